//! A real SMTP server process on loopback for the tests that need mail to
//! cross a wire: Python's aiosmtpd (which `scripts/test` installs)
//! delivering into a Maildir that the test reads.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Mail, parse_mail};

/// aiosmtpd delivering into a Maildir.
pub struct SmtpSink {
    child: Child,
    maildir: tempfile::TempDir,
    pub port: u16,
    /// Messages [`SmtpSink::next_to`] already handed out.
    taken: Mutex<HashSet<PathBuf>>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpSink {
    /// aiosmtpd as it comes: no STARTTLS, no AUTH.
    pub fn start(port: u16) -> SmtpSink {
        let maildir = tempfile::tempdir().unwrap();
        let mut command = Command::new("python3");
        command
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path().join("box"));
        SmtpSink::spawn(command, maildir, port)
    }

    /// No STARTTLS, but AUTH offered in clear and any password accepted
    /// (`tests/smtp_plaintext_auth.py`).
    pub fn start_plaintext_auth(port: u16) -> SmtpSink {
        let maildir = tempfile::tempdir().unwrap();
        let mut command = Command::new("python3");
        command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_plaintext_auth.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(maildir.path().join("box"));
        SmtpSink::spawn(command, maildir, port)
    }

    fn spawn(mut command: Command, maildir: tempfile::TempDir, port: u16) -> SmtpSink {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink {
            child,
            maildir,
            port,
            taken: Mutex::new(HashSet::new()),
        }
    }

    /// The `--mail` value that sends to this sink (plaintext, spelled out).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Delivered messages, each with its file.
    fn delivered(&self) -> Vec<(PathBuf, String)> {
        let new = self.maildir.path().join("box/new");
        std::fs::read_dir(new)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| (e.path(), std::fs::read_to_string(e.path()).unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn messages(&self) -> Vec<String> {
        self.delivered().into_iter().map(|(_, raw)| raw).collect()
    }

    /// AUTH mechanisms the server was sent (plaintext-auth server only).
    pub fn auth_seen(&self) -> String {
        std::fs::read_to_string(self.maildir.path().join("box.auth")).unwrap_or_default()
    }

    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        while self.messages().len() < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.messages()
    }

    /// Waits up to `limit` for a message to `to` that this has not handed
    /// out before, and hands it out.
    pub fn next_to(&self, to: &str, limit: Duration) -> Mail {
        let deadline = Instant::now() + limit;
        loop {
            let mut taken = self.taken.lock().unwrap();
            for (path, raw) in self.delivered() {
                let mail = parse_mail(&raw);
                if mail.to == to && taken.insert(path) {
                    return mail;
                }
            }
            drop(taken);
            assert!(Instant::now() < deadline, "no new mail to {to} reached the SMTP server");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
