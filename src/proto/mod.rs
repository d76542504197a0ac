//! The wire, per protocol generation (DESIGN.md "Two protocol generations"):
//! request parsing, response shapes, error envelopes and discovery fields.
//! `v0_1` is SPEC.md; `v0_7` will sit beside it over the same `core`.
//! Nothing here decides: it parses what arrives and shapes what leaves.
//!
//! `v0_1`: request parsing, the answers of registration and the claim
//! ceremony (from `core`'s outcomes), the error body and its `(status,
//! code)` mapping. Still in `discovery`, to move here: the discovery fields.

pub mod v0_1;
pub mod v0_7;
