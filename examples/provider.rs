//! A development agent provider, for trying authmd's ID-JAG flow by hand.
//!
//! It has its own ES256 key (generated once, kept in a file), serves its
//! JWKS, mints ID-JAGs for a user and an audience (with `auth_time`, the
//! user's login just now), sends logout tokens to a service's v0.1
//! revocation endpoint, and pushes Security Event Tokens (the current
//! generation's revocation) to its events endpoint.
//!
//! ```sh
//! cargo run --example provider -- serve                       # JWKS on http://127.0.0.1:9000
//! cargo run --example provider -- mint --sub alice --aud http://127.0.0.1:8080
//! cargo run --example provider -- revoke --sub alice --aud http://127.0.0.1:8080
//! cargo run --example provider -- notify --sub alice --aud http://127.0.0.1:8080
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authmd_dev::{Alg, JwksServer, SigningKey};
use lexopt::prelude::*;
use ring::digest::{SHA256, digest};

const USAGE: &str = "\
usage: provider serve  [--listen ADDR] [--key FILE]
       provider mint   --sub SUB --aud URL [--email EMAIL] [--scope SCOPES] [--issuer URL] [--key FILE]
       provider revoke --sub SUB --aud URL [--to URL] [--issuer URL] [--key FILE]
       provider notify --sub SUB --aud URL [--to URL] [--issuer URL] [--key FILE]

  --listen ADDR   where to serve the JWKS (default 127.0.0.1:9000; the issuer is http://ADDR)
  --key FILE      the provider's private key (default ./provider-key.p8; created if missing)
  --issuer URL    the issuer to sign as (default http://127.0.0.1:9000)
  --aud URL       the service the token is for: its issuer URL (its base URL)
  --to URL        where to send the token (default <aud>/agent/auth/revoke for a
                  logout token, <aud>/agent/event/notify for a Security Event Token)

`notify` pushes a Security Event Token (RFC 8417, 8935) whose event revokes
what the provider asserted about SUB.
";

struct Args {
    command: String,
    listen: String,
    key: PathBuf,
    issuer: String,
    sub: Option<String>,
    aud: Option<String>,
    email: Option<String>,
    scope: Option<String>,
    to: Option<String>,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    let mut parser = lexopt::Parser::from_env();
    let mut args = Args {
        command: String::new(),
        listen: "127.0.0.1:9000".into(),
        key: "provider-key.p8".into(),
        issuer: "http://127.0.0.1:9000".into(),
        sub: None,
        aud: None,
        email: None,
        scope: None,
        to: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => args.listen = parser.value()?.string()?,
            Long("key") => args.key = parser.value()?.into(),
            Long("issuer") => args.issuer = parser.value()?.string()?,
            Long("sub") => args.sub = Some(parser.value()?.string()?),
            Long("aud") => args.aud = Some(parser.value()?.string()?),
            Long("email") => args.email = Some(parser.value()?.string()?),
            Long("scope") => args.scope = Some(parser.value()?.string()?),
            Long("to") => args.to = Some(parser.value()?.string()?),
            Short('h') | Long("help") => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            Value(command) if args.command.is_empty() => args.command = command.string()?,
            other => return Err(other.unexpected()),
        }
    }
    Ok(args)
}

/// The provider's key: read from `path`, or made and saved there.
fn load_key(path: &PathBuf) -> SigningKey {
    let der = std::fs::read(path).unwrap_or_else(|_| {
        let fresh = SigningKey::generate(Alg::Es256, "new");
        std::fs::write(path, fresh.pkcs8()).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
        eprintln!("provider: created a new ES256 key in {}", path.display());
        fresh.pkcs8().to_vec()
    });
    let probe =
        SigningKey::from_pkcs8(Alg::Es256, "probe", &der).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    // A stable kid: a digest of the public key.
    let public = probe.public_jwk();
    let thumb = digest(&SHA256, format!("{}{}", public["x"], public["y"]).as_bytes());
    let kid: String = thumb.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    SigningKey::from_pkcs8(Alg::Es256, &format!("dev-{kid}"), &der).expect("the key just read")
}

fn fail(message: &str) -> ! {
    eprintln!("provider: {message}");
    std::process::exit(1)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| fail(&format!("{e}\n{USAGE}")));
    let key = load_key(&args.key);
    let required = |value: &Option<String>, name: &str| {
        value
            .clone()
            .unwrap_or_else(|| fail(&format!("--{name} is needed\n{USAGE}")))
    };
    match args.command.as_str() {
        "serve" => {
            let server = JwksServer::start(&args.listen)
                .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", args.listen)));
            server.publish(&[&key], "public, max-age=600");
            println!(
                "provider issuer {} serving {}{}",
                server.base_url,
                server.base_url,
                authmd_dev::JWKS_PATH
            );
            println!(
                "trust it with: authmd provider add {} --name \"Dev Provider\" --allow-loopback-fetch",
                server.base_url
            );
            println!("(authmd fetches these keys from 127.0.0.1 only when run with serve --allow-loopback-fetch)");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        "mint" => {
            let sub = required(&args.sub, "sub");
            let mut claims = authmd_dev::id_jag_claims(&args.issuer, &sub, &required(&args.aud, "aud"), now_secs());
            if let Some(email) = args.email {
                claims["email"] = email.into();
            }
            if let Some(scope) = args.scope {
                claims["scope"] = scope.into();
            }
            println!("{}", key.sign(&authmd_dev::id_jag_header(), &claims));
        }
        command @ ("revoke" | "notify") => {
            let aud = required(&args.aud, "aud");
            let sub = required(&args.sub, "sub");
            let (path, media, token) = if command == "revoke" {
                let claims = authmd_dev::logout_claims(&args.issuer, &sub, &aud, now_secs());
                let token = key.sign(&authmd_dev::logout_header(), &claims);
                ("/agent/auth/revoke", "application/logout+jwt", token)
            } else {
                let events = serde_json::json!({ authmd_dev::REVOKED_EVENT: {} });
                let claims = authmd_dev::secevent_claims(&args.issuer, &sub, &aud, now_secs(), events);
                let token = key.sign(&authmd_dev::secevent_header(), &claims);
                ("/agent/event/notify", "application/secevent+jwt", token)
            };
            let to = args
                .to
                .unwrap_or_else(|| format!("{}{path}", aud.trim_end_matches('/')));
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut response = agent
                .post(&to)
                .header("Content-Type", media)
                .send(token.as_bytes())
                .unwrap_or_else(|e| fail(&format!("{to}: {e}")));
            let body = response.body_mut().read_to_string().unwrap_or_default();
            println!("{} {body}", response.status().as_u16());
        }
        _ => fail(&format!("a command is needed\n{USAGE}")),
    }
}
