"""An SMTP sink for the notification tests: STARTTLS required (aiosmtpd), each
message written as JSON (envelope, content, whether TLS was on) into a folder.

    python3 smtp_sink.py PORT CERT_PEM KEY_PEM OUT_DIR USER PASSWORD

It accepts only USER with PASSWORD (AUTH after STARTTLS), so a message that arrives
was sent with the right credentials.

Prints "ready" once listening on 127.0.0.1:PORT; stops when stdin closes.
"""
import json
import warnings
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd warns about its own deprecated attribute when a client logs in.
warnings.simplefilter("ignore")


class Sink:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.out, f"{self.count:04}.json")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
        }
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok)

    return check


def main():
    port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    user, password = sys.argv[5], sys.argv[6]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(
        Sink(out),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator(user, password),
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
