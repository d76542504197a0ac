"""An SMTP server that offers AUTH without STARTTLS and accepts any
credentials: what a careless relay, or someone on the path who strips the
STARTTLS offer, looks like to authmd. Delivers into a Maildir, and appends
each AUTH mechanism it was sent to MAILDIR.auth (tests/mail.rs).

usage: python3 smtp_plaintext_auth.py HOST PORT MAILDIR
"""

import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult

host, port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def authenticator(server, session, envelope, mechanism, auth_data):
    with open(maildir + ".auth", "a") as seen:
        seen.write(mechanism + "\n")
    return AuthResult(success=True)


controller = Controller(
    Mailbox(maildir),
    hostname=host,
    port=port,
    authenticator=authenticator,
    auth_require_tls=False,
)
controller.start()
threading.Event().wait()
