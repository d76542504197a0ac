//! The `signing_keys` table.

use super::{Columns, PgTx};
use crate::store::Result;
use crate::store::signing_keys::*;
use crate::time::UnixMs;

/// The advisory lock rotations take, so two nodes rotating at once retire
/// each other's key in turn instead of both inserting a current one.
const ROTATION_LOCK: i64 = i64::from_be_bytes(*b"\0authmdk");

impl SigningKeys for PgTx<'_> {
    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        self.query(
            "SELECT kid, pkcs8, created_ms, retired_ms FROM signing_keys
             ORDER BY retired_ms IS NOT NULL, retired_ms DESC",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(StoredSigningKey {
                kid: r.col(0)?,
                pkcs8: r.col(1)?,
                created_ms: r.ms(2)?,
                retired_ms: r.ms_opt(3)?,
            })
        })
        .collect()
    }

    /// Under READ COMMITTED the UPDATE would not see a current key another
    /// node inserted after it began, and the insert would then break the
    /// one-current index: the lock (held to the end of the transaction)
    /// orders rotations, each statement after it seeing the one before.
    fn rotate_signing_key(&self, kid: &str, pkcs8: &[u8], now_ms: UnixMs) -> Result<Option<String>> {
        self.query("SELECT pg_advisory_xact_lock($1)", &[&ROTATION_LOCK])?;
        let retired = self
            .first(
                "UPDATE signing_keys SET retired_ms = $1 WHERE retired_ms IS NULL RETURNING kid",
                &[&now_ms.millis()],
            )?
            .map(|r| r.col(0))
            .transpose()?;
        self.execute(
            "INSERT INTO signing_keys (kid, pkcs8, created_ms) VALUES ($1, $2, $3)",
            &[&kid, &pkcs8, &now_ms.millis()],
        )?;
        Ok(retired)
    }

    fn drop_signing_keys_retired_before(&self, before_ms: UnixMs) -> Result<usize> {
        self.execute(
            "DELETE FROM signing_keys WHERE retired_ms IS NOT NULL AND retired_ms <= $1",
            &[&before_ms.millis()],
        )
    }
}
