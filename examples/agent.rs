//! A complete agent, as the auth.md protocol intends: it calls the API,
//! reads the 401 challenge, follows both discovery documents, picks a flow
//! from the `agent_auth` block, registers, runs the claim ceremony when it
//! must (asking the person for the code on stdin), and calls the API with
//! its credential. Each step is printed. It speaks the current generation
//! (`--protocol v0.7`, the default: an identity assertion exchanged at the
//! token endpoint; the person signs in at the service and confirms on a
//! page) or the first (`--protocol v0.1`: a credential at registration; the
//! claim link is emailed).
//!
//! ```sh
//! cargo run --example agent -- --api http://127.0.0.1:8080/api/resource               # anonymous
//! cargo run --example agent -- --api http://127.0.0.1:8080/api/resource --email you@example.com
//! cargo run --example agent -- --api http://127.0.0.1:8080/api/resource --id-jag "$(cargo run -q --example provider -- mint --sub alice --aud http://127.0.0.1:8080)"
//! cargo run --example agent -- --protocol v0.1 --api http://127.0.0.1:8080/api/resource
//! ```

use std::io::BufRead;

use lexopt::prelude::*;
use serde_json::{Value, json};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn fail(message: &str) -> ! {
    eprintln!("agent: {message}");
    std::process::exit(1)
}

fn get(url: &str, bearer: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = agent().get(url);
    if let Some(token) = bearer {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap_or_else(|e| fail(&format!("GET {url}: {e}")));
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        response.status().as_u16(),
        challenge,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn post(url: &str, body: &Value) -> (u16, Value) {
    let mut response = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap_or_else(|e| fail(&format!("POST {url}: {e}")));
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        response.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// An RFC 7523 exchange at the token endpoint (a form body).
fn exchange(token_endpoint: &str, assertion: &str) -> (u16, Value) {
    let form = format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
    let mut response = agent()
        .post(token_endpoint)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form.as_bytes())
        .unwrap_or_else(|e| fail(&format!("POST {token_endpoint}: {e}")));
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        response.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// The code the person reads off the page (or the mail's page), typed here.
fn code_from_the_person() -> String {
    std::io::stdin()
        .lock()
        .lines()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn json_of(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| fail(&format!("{what} is not JSON")))
}

/// The quoted `resource_metadata` of a `WWW-Authenticate: Bearer ...` challenge.
fn resource_metadata(challenge: &str) -> Option<String> {
    let start = challenge.find("resource_metadata=\"")? + "resource_metadata=\"".len();
    Some(challenge[start..].split('"').next()?.to_string())
}

fn main() {
    let (mut api, mut email, mut id_jag, mut protocol) = (None, None, None, "v0.7".to_string());
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().unwrap_or_else(|e| fail(&e.to_string())) {
        match arg {
            Long("api") => api = Some(parser.value().unwrap().string().unwrap()),
            Long("email") => email = Some(parser.value().unwrap().string().unwrap()),
            Long("id-jag") => id_jag = Some(parser.value().unwrap().string().unwrap()),
            Long("protocol") => protocol = parser.value().unwrap().string().unwrap(),
            Short('h') | Long("help") => {
                println!(
                    "usage: agent --api URL [--protocol v0.7|v0.1] [--email ADDRESS | --id-jag TOKEN]\n\n\
                     Registers with the service guarding URL, as the protocol says, and calls it."
                );
                return;
            }
            other => fail(&other.unexpected().to_string()),
        }
    }
    let api = api.unwrap_or_else(|| fail("--api URL is needed"));

    println!("1. calling {api} without a credential");
    let (status, challenge, _) = get(&api, None);
    let challenge = challenge
        .filter(|_| status == 401)
        .unwrap_or_else(|| fail(&format!("expected a 401 challenge, got {status}")));
    println!("   {status}, WWW-Authenticate: {challenge}");

    let prm_url = resource_metadata(&challenge).unwrap_or_else(|| fail("the challenge names no resource_metadata"));
    println!("2. protected resource metadata: {prm_url}");
    let prm = json_of(&get(&prm_url, None).2, "the protected resource metadata");
    let issuer = prm["authorization_servers"][0]
        .as_str()
        .unwrap_or_else(|| fail("no authorization server"))
        .to_string();
    println!(
        "   resource {} ({}), authorization server {issuer}",
        prm["resource"], prm["resource_name"]
    );

    let asm_url = format!(
        "{}/.well-known/oauth-authorization-server",
        issuer.trim_end_matches('/')
    );
    println!("3. authorization server metadata: {asm_url}");
    let asm = json_of(&get(&asm_url, None).2, "the authorization server metadata");
    let agent_auth = &asm["agent_auth"];
    if protocol == "v0.7" {
        let credential = current_generation(&asm, email.as_deref(), id_jag.as_deref());
        println!("7. calling {api} with the access token");
        let (status, _, body) = get(&api, Some(&credential));
        println!("   {status} {body}");
        if status != 200 {
            std::process::exit(1);
        }
        return;
    }
    if protocol != "v0.1" {
        fail("--protocol is v0.7 or v0.1");
    }
    let register_uri = agent_auth["register_uri"]
        .as_str()
        .unwrap_or_else(|| fail("no register_uri"))
        .to_string();
    let types: Vec<&str> = agent_auth["identity_types_supported"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let assertions: Vec<&str> = agent_auth["identity_assertion"]["assertion_types_supported"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!("   identity types {types:?}, assertion types {assertions:?}, register at {register_uri}");

    let request = match (&id_jag, &email) {
        (Some(token), _) if assertions.contains(&"urn:ietf:params:oauth:token-type:id-jag") => json!({
            "type": "identity_assertion", "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
            "assertion": token, "requested_credential_type": "access_token" }),
        (None, Some(address)) if assertions.contains(&"verified_email") => json!({
            "type": "identity_assertion", "assertion_type": "verified_email",
            "assertion": address, "requested_credential_type": "api_key" }),
        (None, None) if types.contains(&"anonymous") => {
            json!({ "type": "anonymous", "requested_credential_type": "api_key" })
        }
        _ => fail("the service does not offer the flow asked for"),
    };
    println!(
        "4. registering ({} / {})",
        request["type"],
        request.get("assertion_type").unwrap_or(&json!("-"))
    );
    let (status, registered) = post(&register_uri, &request);
    if status != 200 {
        fail(&format!("registration refused: {status} {registered}"));
    }
    println!(
        "   {} {}, scopes {}",
        registered["registration_type"], registered["registration_id"], registered["scopes"]
    );

    let credential = match registered["credential"].as_str() {
        Some(credential) => credential.to_string(),
        None => {
            let claim_uri = registered["claim_url"].as_str().unwrap_or_else(|| fail("no claim_url"));
            println!(
                "5. your confirmation is needed: open the link emailed to you, press the button, and type the code here:"
            );
            let code = std::io::stdin()
                .lock()
                .lines()
                .next()
                .and_then(Result::ok)
                .unwrap_or_default();
            let (status, done) = post(
                &format!("{claim_uri}/complete"),
                &json!({ "claim_token": registered["claim_token"], "otp": code.trim() }),
            );
            if status != 200 {
                fail(&format!("claim refused: {status} {done}"));
            }
            println!("   {} with scopes {}", done["status"], done["scopes"]);
            done["credential"]
                .as_str()
                .unwrap_or_else(|| fail("no credential after the claim"))
                .to_string()
        }
    };

    println!("6. calling {api} with the credential");
    let (status, _, body) = get(&api, Some(&credential));
    println!("   {status} {body}");
    if status != 200 {
        std::process::exit(1);
    }
}

/// SPEC-v0.7: register at `identity_endpoint`, run the claim when the answer
/// asks for one (the person signs in at the service, confirms, reads the
/// code), and exchange the assertion at `token_endpoint`. Returns the
/// access token.
fn current_generation(asm: &Value, email: Option<&str>, id_jag: Option<&str>) -> String {
    let agent_auth = &asm["agent_auth"];
    let endpoint = |name: &str, from: &Value| {
        from[name]
            .as_str()
            .unwrap_or_else(|| fail(&format!("no {name}: does the service speak the current generation?")))
            .to_string()
    };
    let identity_endpoint = endpoint("identity_endpoint", agent_auth);
    let claim_endpoint = endpoint("claim_endpoint", agent_auth);
    let token_endpoint = endpoint("token_endpoint", asm);
    let types: Vec<&str> = agent_auth["identity_types_supported"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!("   identity types {types:?}, register at {identity_endpoint}");
    let request = match (id_jag, email) {
        (Some(token), _) if types.contains(&"identity_assertion") => json!({
            "type": "identity_assertion", "assertion_type": "urn:ietf:params:oauth:token-type:id-jag", "assertion": token }),
        (None, Some(address)) if types.contains(&"service_auth") => {
            json!({ "type": "service_auth", "login_hint": address })
        }
        (None, None) if types.contains(&"anonymous") => json!({ "type": "anonymous" }),
        _ => fail("the service does not offer the flow asked for"),
    };
    println!("4. registering ({} / -)", request["type"]);
    let (status, registered) = post(&identity_endpoint, &request);
    let claim_needed = status == 401 && registered["error"] == "interaction_required";
    if status == 401 && registered["error"] == "login_required" {
        fail(&format!(
            "the provider's login is too old (max_age {}): sign the user in there again and mint a fresh ID-JAG",
            registered["max_age"]
        ));
    }
    if status != 200 && !claim_needed {
        fail(&format!("registration refused: {status} {registered}"));
    }
    println!(
        "   {} {}, scopes {}",
        registered["type"].as_str().unwrap_or("?"),
        registered["id"].as_str().unwrap_or("?"),
        registered["scopes"]
    );
    let assertion = match registered["identity"]["assertion"].as_str() {
        Some(assertion) => assertion.to_string(),
        None => {
            let link = registered["claim"]["attempt"]["verification_uri"]
                .as_str()
                .unwrap_or_else(|| fail("no claim link in the answer"));
            println!("5. your confirmation is needed: open {link}");
            println!("   sign in, press Authorize, and type the code the page shows here:");
            let code = code_from_the_person();
            let (status, done) = post(
                &format!("{claim_endpoint}/complete"),
                &json!({ "claim_token": registered["claim"]["token"], "user_code": code }),
            );
            if status != 200 {
                fail(&format!("claim refused: {status} {done}"));
            }
            println!(
                "   {}; a refresh token came with it",
                done["status"].as_str().unwrap_or("?")
            );
            done["identity"]["assertion"]
                .as_str()
                .unwrap_or_else(|| fail("no assertion after the claim"))
                .to_string()
        }
    };
    println!("6. exchanging the assertion at {token_endpoint}");
    let (status, token) = exchange(&token_endpoint, &assertion);
    if status != 200 {
        fail(&format!("the token endpoint refused: {status} {token}"));
    }
    println!(
        "   {} for {} s, scope {}",
        token["token_type"].as_str().unwrap_or("?"),
        token["expires_in"],
        token["scope"].as_str().unwrap_or("?")
    );
    token["access_token"]
        .as_str()
        .unwrap_or_else(|| fail("no access_token"))
        .to_string()
}
