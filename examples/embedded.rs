//! A hobby API that embeds authmd as a library: it runs authmd's
//! registration server on a thread and checks every request's bearer
//! credential in-process with [`authmd::Guard`], no proxy in between.
//!
//! ```sh
//! cargo run --example embedded -- --db notes.db --authmd-listen 127.0.0.1:8082 --listen 127.0.0.1:3000
//! cargo run --example embedded -- --authmd-listen 127.0.0.1:0 --listen 127.0.0.1:0   # any free ports
//! ```
//!
//! `GET /api/notes` needs `api.read`, `POST /api/notes` (a note as the body)
//! needs `api.write`. Agents discover authmd from the 401 challenge.

use std::io::Read;
use std::sync::{Arc, Mutex};

use authmd::{Guard, ServerOptions};
use lexopt::prelude::*;
use serde_json::json;

const USAGE: &str = "\
usage: embedded [--db PATH] [--listen ADDR] [--authmd-listen ADDR] [--mail SPEC]

A notes API guarded in-process by authmd, which runs on a thread of its own.
  --db PATH             authmd's database (default notes.db)
  --listen ADDR         the notes API (default 127.0.0.1:3000)
  --authmd-listen ADDR  authmd's registration server (default 127.0.0.1:8082, beside
                        a quickstart server on 8080)
  --mail SPEC           how authmd sends mail, as `authmd serve --mail` takes it
                        (default file:./notes-outbox: the sign-in and claim links
                        are in the .eml files there)
An ADDR with port 0 takes any free port; both URLs are printed at start.
";

/// One line on stderr and a non-zero exit: no panic, no backtrace.
fn fail(status: i32, message: &str) -> ! {
    eprintln!("embedded: {message}");
    std::process::exit(status)
}

fn main() {
    let (mut db, mut authmd_listen, mut listen, mut mail) = (
        "notes.db".to_string(),
        "127.0.0.1:8082".to_string(),
        "127.0.0.1:3000".to_string(),
        "file:./notes-outbox".to_string(),
    );
    let mut parser = lexopt::Parser::from_env();
    let value = |parser: &mut lexopt::Parser| -> String {
        parser
            .value()
            .ok()
            .and_then(|v| v.string().ok())
            .unwrap_or_else(|| fail(2, &format!("a value is needed (see --help)\n{USAGE}")))
    };
    while let Some(arg) = parser.next().unwrap_or_else(|e| fail(2, &e.to_string())) {
        match arg {
            Long("db") => db = value(&mut parser),
            Long("authmd-listen") => authmd_listen = value(&mut parser),
            Long("listen") => listen = value(&mut parser),
            Long("mail") => mail = value(&mut parser),
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return;
            }
            other => fail(2, &format!("{} (see --help)", other.unexpected())),
        }
    }
    let api = tiny_http::Server::http(&listen).unwrap_or_else(|e| {
        fail(
            1,
            &format!("cannot listen on {listen} for the notes API: {e} (try --listen)"),
        )
    });
    let api_url = format!("http://{}", api.server_addr().to_ip().unwrap());

    // The notes API is the protected resource authmd advertises.
    let resource = format!("{api_url}/api/");
    authmd::configure(
        db.as_ref(),
        &[("resource", &resource), ("resource_name", "Hobby Notes")],
    )
    .unwrap_or_else(|why| fail(1, &format!("cannot configure authmd in {db}: {why}")));

    let running = authmd::start_server(ServerOptions {
        db: authmd::DbTarget::parse(&db),
        listen: authmd_listen.clone(),
        base_url: None,
        workers: 4,
        clock: Arc::new(authmd::time::SystemClock),
        ticker: Arc::new(authmd::time::SystemTicker::default()),
        mail: authmd::MailTransport::parse(&mail).unwrap_or_else(|why| fail(2, &format!("--mail {mail}: {why}"))),
        trust_proxy: false,
        upstream: None,
        edge: Default::default(),
        allow_loopback_fetch: false,
    })
    .unwrap_or_else(|err| {
        fail(
            1,
            &format!("cannot start authmd on {authmd_listen}: {err} (try --authmd-listen)"),
        )
    });
    let guard = Guard::open(db.as_ref(), &running.base_url)
        .unwrap_or_else(|err| fail(1, &format!("cannot open the guard on {db}: {err}")));
    println!("authmd on {}", running.base_url);
    println!("notes API on {api_url}");

    let notes: Mutex<Vec<String>> = Mutex::new(Vec::new());
    for mut request in api.incoming_requests() {
        let authorization = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str().to_string());
        let scope = if request.method() == &tiny_http::Method::Get {
            "api.read"
        } else {
            "api.write"
        };
        let response = match (request.url(), guard.check(authorization.as_deref(), scope)) {
            (path, _) if !path.starts_with("/api/notes") => {
                tiny_http::Response::from_string("not found").with_status_code(404)
            }
            (_, Err(refusal)) => {
                let mut response = tiny_http::Response::from_string(refusal.body).with_status_code(refusal.status);
                if let Some(challenge) = refusal.www_authenticate {
                    response.add_header(tiny_http::Header::from_bytes("WWW-Authenticate", challenge).unwrap());
                }
                response
            }
            (_, Ok(caller)) => {
                if request.method() == &tiny_http::Method::Post {
                    let mut note = String::new();
                    let _ = request.as_reader().take(4096).read_to_string(&mut note);
                    notes.lock().unwrap().push(note);
                }
                let body = json!({ "notes": *notes.lock().unwrap(), "registration_id": caller.registration_id() });
                tiny_http::Response::from_string(body.to_string())
            }
        };
        let _ = request.respond(response);
    }
}
