//! The gateway's outbound half: sends a request to the upstream API with
//! `ureq` and hands back its status, headers and a body to stream. Refused
//! or broken connections are `502 upstream_unavailable`; past
//! `upstream_timeout_secs` it is `504 upstream_timeout`, so a slow upstream
//! cannot hold a worker longer than that.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;
use crate::http::Stream;

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Stream,
}

/// The upstream client: one `ureq` agent, so connections to the upstream
/// are pooled and reused, rebuilt only when the timeout setting changes.
#[derive(Default)]
pub struct Client {
    agent: Mutex<Option<(Duration, ureq::Agent)>>,
}

impl Client {
    fn agent(&self, timeout: Duration) -> ureq::Agent {
        let mut slot = self.agent.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((built_for, agent)) if *built_for == timeout => agent.clone(),
            _ => {
                let agent = build(timeout);
                *slot = Some((timeout, agent.clone()));
                agent
            }
        }
    }

    pub fn send(
        &self,
        url: &str,
        method: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, Error> {
        send_with(&self.agent(timeout), url, method, headers, body)
    }
}

fn build(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
        .max_redirects(0)
        .http_status_as_error(false)
        // Send the client's headers as they came, nothing of ureq's own.
        .user_agent(ureq::config::AutoHeaderValue::None)
        .accept(ureq::config::AutoHeaderValue::None)
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .allow_non_standard_methods(true)
        .max_idle_connections(64)
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

fn send_with(
    agent: &ureq::Agent,
    url: &str,
    method: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Answer, Error> {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(body)
        .map_err(|e| Error::InvalidRequest(format!("cannot forward this request: {e}")))?;
    let response = agent.run(request).map_err(|err| match err {
        ureq::Error::Timeout(_) => Error::UpstreamTimeout,
        other => Error::UpstreamUnavailable(other.to_string()),
    })?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let reader = response.into_body().into_with_config().limit(u64::MAX).reader();
    Ok(Answer {
        status,
        headers,
        body: Stream {
            reader: Box::new(reader),
            length,
        },
    })
}
