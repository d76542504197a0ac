//! `GET /metrics` in the Prometheus text format: requests by route and
//! status, a latency histogram, registrations by type, ID-JAG refusals by
//! code, rate-limit refusals by flow; the mail outbox is read from the
//! database when scraped. Names are `authmd_*`; counters end in `_total`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::model::Generation;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    /// Cumulative counts per bound, then +Inf.
    buckets: [u64; LATENCY_BOUNDS.len() + 1],
    sum_secs: f64,
}

#[derive(Default)]
struct Counters {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    /// By generation and the registration type its wire names.
    registrations: BTreeMap<(Generation, &'static str), u64>,
    id_jag_refusals: BTreeMap<&'static str, u64>,
    rate_limited: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

/// What is read from the database at scrape time.
pub struct MailGauges {
    pub outbox_pending: i64,
    pub failed: i64,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counters)) {
        if let Ok(mut counters) = self.counters.lock() {
            f(&mut counters);
        }
    }

    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        self.with(|c| {
            *c.requests.entry((route, status)).or_default() += 1;
            let histogram = c.latency.entry(route).or_default();
            let secs = took.as_secs_f64();
            histogram.sum_secs += secs;
            for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
                if secs <= *bound {
                    histogram.buckets[i] += 1;
                }
            }
            histogram.buckets[LATENCY_BOUNDS.len()] += 1;
        });
    }

    pub fn registration(&self, generation: Generation, registration_type: &'static str) {
        self.with(|c| *c.registrations.entry((generation, registration_type)).or_default() += 1);
    }

    pub fn id_jag_refusal(&self, code: &'static str) {
        self.with(|c| *c.id_jag_refusals.entry(code).or_default() += 1);
    }

    pub fn rate_limited(&self, bucket: &'static str) {
        self.with(|c| *c.rate_limited.entry(bucket).or_default() += 1);
    }

    pub fn render(&self, mail: &MailGauges) -> String {
        let (mut out, mut body) = (String::new(), String::new());
        let Ok(c) = self.counters.lock() else { return out };
        let name = family_then(
            &mut out,
            &mut body,
            "authmd_http_requests_total",
            "counter",
            "Requests answered, by route and status.",
        );
        for ((route, status), n) in &c.requests {
            let _ = writeln!(body, "{name}{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let name = family_then(
            &mut out,
            &mut body,
            "authmd_http_request_duration_seconds",
            "histogram",
            "Time to answer a request, by route.",
        );
        for (route, h) in &c.latency {
            for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
                let _ = writeln!(
                    body,
                    "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let count = h.buckets[LATENCY_BOUNDS.len()];
            let _ = writeln!(body, "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(body, "{name}_sum{{route=\"{route}\"}} {}", h.sum_secs);
            let _ = writeln!(body, "{name}_count{{route=\"{route}\"}} {count}");
        }
        let name = family_then(
            &mut out,
            &mut body,
            "authmd_registrations_total",
            "counter",
            "Successful registration requests, by protocol generation and the registration type its wire names.",
        );
        for ((generation, kind), n) in &c.registrations {
            let generation = generation.as_db();
            let _ = writeln!(body, "{name}{{generation=\"{generation}\",type=\"{kind}\"}} {n}");
        }
        let name = family_then(
            &mut out,
            &mut body,
            "authmd_id_jag_refusals_total",
            "counter",
            "Refused ID-JAGs (both generations), logout tokens and security event tokens, by error code.",
        );
        for (code, n) in &c.id_jag_refusals {
            let _ = writeln!(body, "{name}{{code=\"{code}\"}} {n}");
        }
        let name = family_then(
            &mut out,
            &mut body,
            "authmd_rate_limited_total",
            "counter",
            "Requests refused by a rate limit, by flow.",
        );
        for (bucket, n) in &c.rate_limited {
            let _ = writeln!(body, "{name}{{flow=\"{bucket}\"}} {n}");
        }
        let name = family_then(
            &mut out,
            &mut body,
            "authmd_mail_outbox_pending",
            "gauge",
            "Messages waiting in the outbox.",
        );
        let _ = writeln!(body, "{name} {}", mail.outbox_pending);
        let name = family_then(
            &mut out,
            &mut body,
            "authmd_mail_failed_total",
            "counter",
            "Messages abandoned after the last delivery attempt.",
        );
        let _ = writeln!(body, "{name} {}", mail.failed);
        out.push_str(&body);
        out
    }
}

/// Flushes the previous family's samples, then writes the next family's header.
fn family_then(out: &mut String, body: &mut String, name: &str, kind: &str, help: &str) -> String {
    out.push_str(body);
    body.clear();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.request("register", 200, Duration::from_micros(700));
        metrics.request("register", 429, Duration::from_millis(30));
        metrics.registration(Generation::V0_1, "anonymous");
        metrics.registration(Generation::V0_7, "identity_assertion");
        metrics.id_jag_refusal("invalid_signature");
        metrics.rate_limited("anonymous");
        let text = metrics.render(&MailGauges {
            outbox_pending: 3,
            failed: 1,
        });
        assert!(text.contains("authmd_http_requests_total{route=\"register\",status=\"429\"} 1"));
        assert!(text.contains("authmd_http_request_duration_seconds_bucket{route=\"register\",le=\"0.001\"} 1"));
        assert!(text.contains("authmd_http_request_duration_seconds_count{route=\"register\"} 2"));
        assert!(text.contains("authmd_registrations_total{generation=\"v0.1\",type=\"anonymous\"} 1"));
        assert!(text.contains("authmd_registrations_total{generation=\"v0.7\",type=\"identity_assertion\"} 1"));
        assert!(text.contains("authmd_mail_outbox_pending 3"));
        // Every sample follows its family's TYPE line.
        let mut seen_type = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                seen_type.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(seen_type.contains(family) || seen_type.contains(name), "{line}");
            }
        }
    }
}
