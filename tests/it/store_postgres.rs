//! The PostgreSQL store (issue 14) against a real server
//! (`common::postgres`): for now, the fixture itself.

use crate::common::postgres;

/// Each test gets a database of its own, empty, on a server that syncs
/// its writes and listens on loopback only.
#[test]
fn fixture_hands_out_fresh_databases() {
    let (first, second) = (postgres::database(), postgres::database());
    assert_ne!(first, second);
    let server = postgres::server();
    let name = |url: &str| url.rsplit('/').next().unwrap().to_string();
    server.psql(&name(&first), "CREATE TABLE only_here (x INTEGER)");
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(server.psql(&name(&first), tables).trim(), "1");
    assert_eq!(server.psql(&name(&second), tables).trim(), "0");
    assert_eq!(server.psql("postgres", "SHOW fsync").trim(), "on");
    assert_eq!(server.psql("postgres", "SHOW listen_addresses").trim(), "127.0.0.1");
    let socket_dir = server.psql("postgres", "SHOW unix_socket_directories");
    assert_eq!(socket_dir.trim(), server.dir().to_str().unwrap());
}
