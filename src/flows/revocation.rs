//! Self-revocation (RFC 7009, `POST /oauth/revoke`): an agent drops one of
//! its own credentials. The answer is the same whether or not the token was
//! known, so it reveals nothing. Operator revocation is `core::revoke`
//! driven by `authmd revoke`; provider revocation is `id_jag`.

use serde_json::json;

use super::Ctx;
use crate::error::Error;
use crate::model::EventName;
use crate::secrets;
use crate::store::audit;

pub fn self_revoke(ctx: &mut Ctx<'_>, token: &str) -> Result<(), Error> {
    if token.is_empty() || !secrets::credential_checksum_ok(token) {
        return Ok(());
    }
    let (now_ms, client_ip) = (ctx.now_ms, ctx.client_ip);
    let hash = secrets::hash(token);
    ctx.writer.write(|tx| {
        let Some(found) = tx.credential_by_hash(&hash)? else {
            return Ok(());
        };
        if found.revoked_ms.is_some() || !tx.revoke_credential(&found.id, now_ms)? {
            return Ok(());
        }
        let detail = json!({ "by": "agent", "credential_type": found.kind.as_str() });
        tx.record_event(
            now_ms,
            EventName::CredentialRevoked,
            audit::NewEvent {
                registration_id: Some(&found.registration.id),
                client_ip,
                detail: detail.as_object().cloned().unwrap_or_default(),
                ..Default::default()
            },
        )?;
        Ok(())
    })
}
