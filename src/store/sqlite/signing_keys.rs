//! The `signing_keys` table.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::Result;
use crate::store::signing_keys::*;
use crate::time::UnixMs;

impl SigningKeys for Connection {
    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        let mut stmt = self.prepare_cached(
            "SELECT kid, pkcs8, created_ms, retired_ms FROM signing_keys
             ORDER BY retired_ms IS NOT NULL, retired_ms DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredSigningKey {
                kid: r.get(0)?,
                pkcs8: r.get(1)?,
                created_ms: r.get(2)?,
                retired_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn rotate_signing_key(&self, kid: &str, pkcs8: &[u8], now_ms: UnixMs) -> Result<Option<String>> {
        let retired: Option<String> = self
            .prepare_cached("UPDATE signing_keys SET retired_ms = ?1 WHERE retired_ms IS NULL RETURNING kid")?
            .query_row([now_ms], |r| r.get(0))
            .optional()?;
        self.prepare_cached("INSERT INTO signing_keys (kid, pkcs8, created_ms) VALUES (?1, ?2, ?3)")?
            .execute(params![kid, pkcs8, now_ms])?;
        Ok(retired)
    }

    fn drop_signing_keys_retired_before(&self, before_ms: UnixMs) -> Result<usize> {
        Ok(self
            .prepare_cached("DELETE FROM signing_keys WHERE retired_ms IS NOT NULL AND retired_ms <= ?1")?
            .execute([before_ms])?)
    }
}
