//! Users: the people who own registrations. Emails are kept lower-cased and
//! compared that way (SPEC.md 4.4).

use super::Result;
use crate::time::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub name: Option<String>,
    pub created_ms: UnixMs,
}

pub trait Users {
    fn insert_user(&self, user: &User) -> Result<()>;
    fn user(&self, id: &str) -> Result<Option<User>>;
    fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    fn user_by_phone(&self, phone_number: &str) -> Result<Option<User>>;
    /// The newest `limit` users.
    fn users(&self, limit: u32) -> Result<Vec<User>>;
}
