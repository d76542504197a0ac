//! The trust list of agent providers (SPEC.md 4.3).

use super::Result;
use crate::time::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub issuer: String,
    /// As configured; see [`Provider::jwks_uri`] for the effective one.
    pub pinned_jwks_uri: Option<String>,
    pub client_id: Option<String>,
    pub name: Option<String>,
    pub created_ms: UnixMs,
}

impl Provider {
    /// The pinned JWKS URI, or `<iss>/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        self.pinned_jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/')))
    }
}

pub trait Providers {
    /// Adds or replaces a provider; returns true if it was new.
    fn upsert_provider(&self, provider: &Provider) -> Result<bool>;
    fn remove_provider(&self, issuer: &str) -> Result<bool>;
    fn provider(&self, issuer: &str) -> Result<Option<Provider>>;
    /// Every provider, by issuer.
    fn providers(&self) -> Result<Vec<Provider>>;
}
