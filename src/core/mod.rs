//! The protocol operations both generations use, below the wire (DESIGN.md
//! "Layout"). So far: [`issue`], the one place a credential is minted, and
//! [`lifecycle::next`], the one transition function of SPEC.md 5.7, and
//! [`users::match_user`], the one user matching. Next here (issue 11):
//! register, verify into an `Admitted` proof, revoke and expire, moved out of
//! `flows` and over the store interface. Nothing here parses or shapes the
//! wire, touches a socket, or reads a clock: the instant is passed in.

pub mod issue;
pub mod lifecycle;
pub mod revoke;
pub mod users;
