//! The claim ceremony one transition at a time (SPEC.md 5.7; the diagram
//! beside `core::lifecycle::next`). A [`Scenario`] builds up to the state
//! under test on the server in this process, so each test is about one
//! transition, and expiry is a moved clock, not a sleep (issue 11).

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Client, InProcess, Reply};

/// A registration on its way through the ceremony.
struct Scenario {
    server: InProcess,
    registration: Value,
}

impl Scenario {
    /// `unclaimed`: an anonymous registration with its API key.
    fn anonymous() -> Scenario {
        let server = InProcess::start();
        let registration = server.register_anonymous();
        Scenario { server, registration }
    }

    /// `pending_claim` from the start: a verified-email registration, its mail sent.
    fn verified_email(email: &str) -> Scenario {
        let server = InProcess::start();
        let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":email,"requested_credential_type":"api_key"});
        let reply = server.post_json("/agent/auth", &body.to_string());
        assert_eq!(reply.status, 200, "{}", reply.body);
        let scenario = Scenario {
            server,
            registration: reply.json(),
        };
        scenario.server.wait_for_mail(1);
        scenario
    }

    /// Asks for the claim by `email` (and waits for the mail).
    fn claim_requested(self, email: &str) -> Scenario {
        let mails = self.server.outbox().len();
        let reply = self.request_claim(email);
        assert_eq!(reply.status, 200, "{}", reply.body);
        self.server.wait_for_mail(mails + 1);
        self
    }

    fn request_claim(&self, email: &str) -> Reply {
        let body = json!({ "claim_token": self.claim_token(), "email": email });
        self.server.post_json("/agent/auth/claim", &body.to_string())
    }

    fn claim_token(&self) -> &str {
        self.registration["claim_token"].as_str().unwrap()
    }

    fn id(&self) -> &str {
        self.registration["registration_id"].as_str().unwrap()
    }

    /// The token of the newest claim link.
    fn link_token(&self) -> String {
        self.server.outbox().last().expect("a claim mail").token()
    }

    /// Presses the page's button; returns the code it shows.
    fn code(&self) -> String {
        let form = format!("token={}", self.link_token());
        let page = self.server.request(
            "POST",
            "/agent/auth/claim/view",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        );
        assert_eq!(page.status, 200, "{}", page.body);
        page.body.split("id=\"otp\">").nth(1).expect("a code on the page")[..6].to_string()
    }

    fn complete(&self, otp: &str) -> Reply {
        let body = json!({ "claim_token": self.claim_token(), "otp": otp });
        self.server.post_json("/agent/auth/claim/complete", &body.to_string())
    }

    /// "This wasn't me", confirmed.
    fn reject(&self) -> Reply {
        let form = format!("token={}&confirm=yes", self.link_token());
        self.server.request(
            "POST",
            "/agent/auth/claim/reject",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
    }

    /// The status `authmd registrations list` shows.
    fn status(&self) -> String {
        let listed = self.server.cli_ok(&["registrations", "list", "--json"]);
        let row = listed
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["id"] == self.id() || r["registration_id"] == self.id())
            .unwrap_or_else(|| panic!("{} not listed:\n{listed}", self.id()));
        row["status"].as_str().unwrap().to_string()
    }
}

#[test]
fn unclaimed_to_pending_claim_when_a_claim_is_requested() {
    let s = Scenario::anonymous();
    assert_eq!(s.status(), "unclaimed");
    let s = s.claim_requested("ann@example.com");
    assert_eq!(s.status(), "pending_claim");
}

#[test]
fn pending_claim_stays_pending_for_the_same_address_with_the_same_attempt() {
    let s = Scenario::anonymous();
    let first = s.request_claim("ann@example.com").json();
    let again = s.request_claim("ann@example.com").json();
    assert_eq!(first["claim_attempt_id"], again["claim_attempt_id"]);
    assert_eq!(s.status(), "pending_claim");
}

#[test]
fn pending_claim_to_claimed_with_the_right_code() {
    let s = Scenario::anonymous().claim_requested("ann@example.com");
    let done = s.complete(&s.code());
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["status"], "claimed");
    assert_eq!(s.status(), "claimed");
    // The key now carries the post-claim scopes.
    let me = s
        .server
        .get_with_token("/api/resource", s.registration["credential"].as_str().unwrap());
    assert!(me.json()["scopes"].to_string().contains("api.write"), "{}", me.body);
}

#[test]
fn an_anonymous_pending_claim_goes_back_to_unclaimed_when_rejected() {
    let s = Scenario::anonymous().claim_requested("ann@example.com");
    assert_eq!(s.reject().status, 200);
    assert_eq!(s.status(), "unclaimed");
}

#[test]
fn a_verified_email_pending_claim_ends_rejected_when_rejected() {
    let s = Scenario::verified_email("ben@example.com");
    assert_eq!(s.status(), "pending_claim");
    assert_eq!(s.reject().status, 200);
    assert_eq!(s.status(), "rejected");
    s.request_claim("ben@example.com").assert_error(410, "claim_expired");
}

#[test]
fn pending_claim_to_locked_after_twenty_wrong_codes() {
    let s = Scenario::anonymous().claim_requested("ann@example.com");
    for round in 0..4 {
        let right = s.code();
        let wrong = if right == "000000" { "111111" } else { "000000" };
        for _ in 0..5 {
            let reply = s.complete(wrong);
            assert!(
                reply.status == 401 || reply.status == 410,
                "round {round}: {}",
                reply.body
            );
        }
    }
    assert_eq!(s.status(), "locked");
    s.complete("123456").assert_error(410, "claim_expired");
}

#[test]
fn unclaimed_to_expired_past_its_ttl() {
    let s = Scenario::anonymous();
    s.server.set("registration_ttl_secs", "60");
    let s = Scenario {
        registration: s.server.register_anonymous(),
        server: s.server,
    };
    s.server.advance(Duration::from_secs(60));
    assert!(s.server.eventually(Duration::from_secs(10), || s.status() == "expired"));
    s.request_claim("ann@example.com").assert_error(410, "claim_expired");
}

#[test]
fn claimed_to_revoked_by_the_operator() {
    let s = Scenario::anonymous().claim_requested("ann@example.com");
    s.complete(&s.code());
    assert_eq!(s.status(), "claimed");
    s.server.cli_ok(&["revoke", "--registration", s.id()]);
    assert_eq!(s.status(), "revoked");
    s.server
        .get_with_token("/api/resource", s.registration["credential"].as_str().unwrap())
        .assert_error(401, "invalid_token");
}
