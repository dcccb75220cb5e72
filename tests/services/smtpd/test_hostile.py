# SPDX-License-Identifier: MIT
"""mta-smtpd: a table of hostile SMTP sessions, each with its exact replies and a check of exactly
what got queued (nothing, or the one message the client really sent, byte for byte)."""

import time
import unittest

import mtatest
from smtpdtest import SmtpdCase, body_of

ALICE = b"mtatest-alice@example.test"
OPEN = b"EHLO hostile.example\r\nMAIL FROM:<h@example.org>\r\nRCPT TO:<" + ALICE + b">\r\nDATA\r\n"
OPEN_REPLIES = ("250 ", "250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>")
QUEUED = "250 2.0.0 Ok: queued as "


def stored(data):
    """What the receiver stores for DATA bytes up to and including the end marker: LF line ends,
    dot-unstuffed, a line ending in a bare LF taken as a line (normalize) but never as the start of
    the end marker, a lone dot that is not the end marker kept, bare CR kept."""
    out = []
    prev_crlf = True
    for line in data.split(b"\n")[:-1]:
        crlf = line.endswith(b"\r")
        if crlf:
            line = line[:-1]
        if line == b".":
            if crlf and prev_crlf:
                return b"".join(out)
        elif line.startswith(b"."):
            line = line[1:]
        out.append(line + b"\n")
        prev_crlf = crlf
    raise AssertionError("no end marker in %r" % data)


# (name, [(bytes to send, [expected reply prefixes])...], expected queued bodies or None for "nothing",
#  closed: True when the server must have closed the connection at the end)
CASES = []


def case(name, steps, bodies=(), closed=False, greet=True):
    CASES.append((name, steps, list(bodies), closed, greet))


# ---- SMTP smuggling: every bare-CR/bare-LF end-of-data look-alike is content ----
SMUGGLE = b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<" + ALICE + b">\r\nDATA\r\nFrom: ceo@example.test\r\n\r\nsmuggled\r\n"
for sep in (b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r",
            b"\r\n.\x00\r\n", b"\r\n\x00.\r\n", b"\r\n. \r\n", b"\r\n.\r\r\n", b"\n..\n", b"\r\n.\t\r\n",
            b"\n.\n\n", b"\r\n..\r\n", b"\n\r.\r\n", b"\r\r\n.\n\r\n"):
    data = b"Subject: first\r\n\r\nfirst" + sep + SMUGGLE + b"\r\n.\r\n"
    for split in (False, True):
        steps = [(OPEN, OPEN_REPLIES)]
        if split:
            # The same bytes, one write per byte around the separator.
            cut = data.index(sep)
            steps.append((data[:cut], []))
            steps += [(bytes([b]), []) for b in sep]
            steps.append((data[cut + len(sep):], [QUEUED]))
        else:
            steps.append((data, [QUEUED]))
        steps.append((b"QUIT\r\n", ["221 2.0.0 Bye"]))
        case("smuggle %r%s" % (sep, " split" if split else ""), steps, [stored(data)], closed=True)

# A second transaction pipelined in the same write is a second, separate message.
two = b"one\r\n.\r\n" + b"MAIL FROM:<second@example.org>\r\nRCPT TO:<" + ALICE + b">\r\nDATA\r\n"
case("second transaction in one write",
     [(OPEN, OPEN_REPLIES), (two, [QUEUED, "250 2.1.0", "250 2.1.5", "354 "]),
      (b"two\r\n.\r\nQUIT\r\n", [QUEUED, "221 "])], [b"one\n", b"two\n"], closed=True)
case("dot line variants inside content",
     [(OPEN, OPEN_REPLIES),
      (b"..\r\n...\r\n.x\r\n \r\n.\r\n", [QUEUED])], [b".\n..\nx\n \n"])
case("bare CR kept, bare LF normalized",
     [(OPEN, OPEN_REPLIES), (b"a\rb\r\nc\nd\r\r\n\r\n.\r\n", [QUEUED])], [b"a\rb\nc\nd\r\n\n"])
case("NUL and 8-bit bytes in content kept",
     [(OPEN, OPEN_REPLIES), (b"a\x00b\xff\xfe\r\n.\r\n", [QUEUED])], [b"a\x00b\xff\xfe\n"])
case("empty message", [(OPEN, OPEN_REPLIES), (b".\r\n", [QUEUED])], [b""])
case("end marker split over writes",
     [(OPEN, OPEN_REPLIES), (b"x\r", []), (b"\n", []), (b".", []), (b"\r", []), (b"\n", [QUEUED])], [b"x\n"])
case("bare LF before the end marker is not the end",
     [(OPEN, OPEN_REPLIES), (b"x\n.\r\ny\r\n.\r\n", [QUEUED])], [b"x\n.\ny\n"])

# ---- dropped connections ----
case("dropped in DATA", [(OPEN, OPEN_REPLIES), (b"Subject: x\r\n\r\nno end", [])], closed=False)
case("dropped after bare-LF end", [(OPEN, OPEN_REPLIES), (b"Subject: x\n.\n", [])])
case("dropped after CR LF dot without CR LF", [(OPEN, OPEN_REPLIES), (b"Subject: x\r\n.", [])])
case("dropped after MAIL", [(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n", ["250 ", "250 2.1.0"])])
case("dropped in BDAT",
     [(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + ALICE + b">\r\nBDAT 100 LAST\r\nshort",
       ["250 ", "250 2.1.0", "250 2.1.5"])])

# ---- command syntax ----
for name, line, want in (
        ("NUL in verb", b"EH\x00LO x", "500 5.5.2 Error: bad syntax"),
        ("NUL in MAIL", b"MAIL FROM:<a\x00@b.example>", "500 5.5.2 Error: bad syntax"),
        ("NUL at start", b"\x00", "500 5.5.2 Error: bad syntax"),
        ("CR inside MAIL parameters", b"MAIL FROM:<a@b.example>\rRCPT TO:<x@y>", "500 5.5.2 Error: bad syntax"),
        ("bare CR between commands", b"NOOP\rNOOP", "500 5.5.2 Error: bad syntax"),
        ("escape sequence", b"NOOP \x1b[2J", "500 5.5.2 Error: bad syntax"),
        ("DEL", b"NOOP\x7f", "500 5.5.2 Error: bad syntax"),
        ("empty line", b"", "500 5.5.2 Error: bad syntax"),
        ("blank line", b"   ", "500 5.5.2 Error: bad syntax"),
        ("unknown verb", b"XYZZY", "502 5.5.2 Error: command not recognized"),
        ("HEAD", b"HEAD / HTTP/1.0", "502 5.5.2 Error: command not recognized"),
        ("EXPN", b"EXPN root", "502 5.5.2 Error: command not recognized"),
        ("TURN", b"TURN", "502 5.5.2 Error: command not recognized"),
        ("ETRN", b"ETRN example.test", "502 5.5.2 Error: command not recognized"),
        ("8-bit HELO", b"EHLO \xc3\xa9xample.test", "250 CHUNKING"),
        ("lower-case verb", b"noop", "250 2.0.0 Ok"),
        ("mixed-case verb", b"NoOp", "250 2.0.0 Ok"),
        ("verb with tab", b"NOOP\tx", "250 2.0.0 Ok"),
        ("MAIL without colon", b"MAIL FROM <a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        ("MAIL huge SIZE", b"MAIL FROM:<a@b.example> SIZE=999999999999999999999999", "501 5.5.4 Bad message size syntax"),
        ("MAIL negative SIZE", b"MAIL FROM:<a@b.example> SIZE=-1", "501 5.5.4 Bad message size syntax"),
        ("MAIL unbalanced quote", b'MAIL FROM:<"a@b.example>', "501 5.1.7 Bad sender address syntax"),
        ("MAIL two addresses", b"MAIL FROM:<a@b.example> <c@d.example>", "555 5.5.4 Unsupported option: <c@d.example>"),
        ("MAIL overlong address", b"MAIL FROM:<" + b"a" * 300 + b"@b.example>", "501 5.1.7 Bad sender address syntax"),
        ("RCPT before MAIL", b"RCPT TO:<" + ALICE + b">", "503 5.5.1 Error: need MAIL command"),
        ("DATA before MAIL", b"DATA", "503 5.5.1 Error: need MAIL command"),
        ("BDAT before MAIL", b"BDAT 0", "503 5.5.1 Error: need MAIL command"),
        ("STARTTLS without TLS", b"STARTTLS", "502 5.5.1 Error: command not implemented"),
        ("VRFY probe", b"VRFY mtatest-alice", "252 2.0.0"),
        ("VRFY probe unknown", b"VRFY nosuchuser", "252 2.0.0")):
    case("command: " + name, [(line + b"\r\n", [want])])

for verb in (b"GET / HTTP/1.1", b"POST /cgi-bin/x HTTP/1.0", b"CONNECT mx.example.test:25 HTTP/1.0",
             b"get /", b"<html>", b"{\"json\": 1}", b"1 NOOP", b"-NOOP"):
    case("forbidden: %r" % verb, [(verb + b"\r\nNOOP\r\n", ["221 2.7.0 Error: I can break rules, too. Goodbye."])],
         closed=True)

# ---- line lengths ----
case("command line of 2048 bytes", [(b"NOOP " + b"x" * 2043 + b"\r\n", ["250 2.0.0 Ok"])])
case("command line of 2049 bytes", [(b"NOOP " + b"x" * 2044 + b"\r\nNOOP\r\n", ["500 5.5.2 Error: line too long", "250 2.0.0 Ok"])])
case("endless command line", [(b"NOOP " + b"x" * 300000, ["500 5.5.2 Error: line too long"]),
                              (b"MAIL FROM:<x@y.example>\r\nNOOP\r\n", ["250 2.0.0 Ok"])])
case("overlong MAIL line with a valid command in its tail",
     [(b"MAIL FROM:<a@b.example> " + b"x" * 3000 + b"\r\nRCPT TO:<" + ALICE + b">\r\n",
       ["500 5.5.2 Error: line too long", "503 5.5.1 Error: need MAIL command"])])
case("long text lines kept whole",
     [(OPEN, OPEN_REPLIES), (b"A" * 5000 + b"\r\n." + b"B" * 4000 + b"\r\n.\r\n", [QUEUED])],
     [b"A" * 5000 + b"\n" + b"B" * 4000 + b"\n"])
case("long line ending in CR at the split point",
     [(OPEN, OPEN_REPLIES), (b"C" * 2047 + b"\r\r\n" + b"D" * 4095 + b"\r\n.\r\n", [QUEUED])],
     [b"C" * 2047 + b"\r\n" + b"D" * 4095 + b"\n"])
case("bare LF commands accepted",
     [(b"EHLO x\nMAIL FROM:<a@b.example>\nRCPT TO:<" + ALICE + b">\nDATA\n", ["250 ", "250 2.1.0", "250 2.1.5", "354 "]),
      (b"lf only\n.\nstill content\r\n.\r\n", [QUEUED])], [b"lf only\n.\nstill content\n"])

# ---- relay attempts from a client outside mynetworks ----
for addr, want in ((b"victim@remote.example", "454 4.7.1 <victim@remote.example>: Relay access denied"),
                   (b"VICTIM@REMOTE.EXAMPLE", "454 4.7.1 "),
                   (b"victim%remote.example@example.test", "550 5.1.1 "),
                   (b"victim%remote.example@mx.example.test", "550 5.1.1 "),
                   (b'"victim@remote.example"@example.test', "550 5.1.1 "),
                   (b"victim@remote.example@example.test", "5"),
                   (b"remote.example!victim@example.test", "550 5.1.1 "),
                   (b"@example.test:victim@remote.example", "454 4.7.1 "),
                   (b"@example.test,@mx.example.test:victim@remote.example", "454 4.7.1 "),
                   (b"victim@[192.0.2.77]", "454 4.7.1 "),
                   (b"victim@[IPv6:2001:db8::1]", "454 4.7.1 "),
                   (b"victim@remote.example.", "4"),
                   (b"victim@localhost.remote.example", "454 4.7.1 "),
                   (b"victim@example.test.remote.example", "454 4.7.1 "),
                   (b"mtatest-alice@remote.example", "454 4.7.1 ")):
    case("relay: %r" % addr, [(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + addr + b">\r\nDATA\r\n",
                               ["250 ", "250 2.1.0", want, "554 5.5.1 Error: no valid recipients"])])

# ---- transactions that must not end up queued ----
case("RSET in the middle",
     [(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + ALICE + b">\r\nRSET\r\nDATA\r\n",
       ["250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0 Ok", "503 5.5.1 Error: need MAIL command"])])
case("commands before the greeting",
     [(b"EHLO early\r\nNOOP\r\n", ["220 ", "250 CHUNKING", "250 2.0.0 Ok"])], greet=False)
case("BDAT count overflow", [(b"BDAT 99999999999999999999999\r\n", ["501 5.5.4 Syntax: BDAT count [LAST]"])], closed=True)
case("BDAT negative", [(b"BDAT -1\r\n", ["501 5.5.4 Syntax: BDAT count [LAST]"])], closed=True)
case("BDAT junk after LAST", [(b"BDAT 1 LAST junk\r\nx", ["501 5.5.4 Syntax: BDAT count [LAST]"])], closed=True)
case("BDAT chunk holding commands is data",
     [(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + ALICE + b">\r\nBDAT 18 LAST\r\nQUIT\r\nRSET\r\nNOOP\r\n",
       ["250 ", "250 2.1.0", "250 2.1.5", QUEUED]), (b"NOOP\r\n", ["250 2.0.0 Ok"])],
     [b"QUIT\nRSET\nNOOP\n"])
case("DATA after BDAT",
     [(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + ALICE + b">\r\nBDAT 2\r\nabDATA\r\nBDAT 1 LAST\r\nc",
       ["250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0 Ok: 2 bytes", "503 5.5.1 Error: DATA after BDAT", QUEUED])],
     [b"abc"])


# ---- more command-level probes ----
MAILRCPT = b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n"
for name, line, want in (
        ("NUL in RCPT", b"RCPT TO:<mtatest-alice\x00@example.test>", "500 5.5.2 Error: bad syntax"),
        ("NUL after RCPT", b"RCPT TO:<mtatest-alice@example.test>\x00", "500 5.5.2 Error: bad syntax"),
        ("CR in RCPT address", b"RCPT TO:<mtatest-alice\r@example.test>", "500 5.5.2 Error: bad syntax"),
        ("CR before RCPT parameters", b"RCPT TO:<mtatest-alice@example.test>\rNOTIFY=NEVER", "500 5.5.2 Error: bad syntax"),
        ("invalid UTF-8 in RCPT", b"RCPT TO:<\xff\xfe@example.test>", "500 5.5.2 Error: bad UTF-8 syntax"),
        ("overlong UTF-8 slash", b"RCPT TO:<\xc0\xaf@example.test>", "500 5.5.2 Error: bad UTF-8 syntax"),
        ("UTF-8 surrogate", b"RCPT TO:<\xed\xa0\x80@example.test>", "500 5.5.2 Error: bad UTF-8 syntax"),
        ("truncated UTF-8", b"RCPT TO:<a@example.test\xc3>", "500 5.5.2 Error: bad UTF-8 syntax"),
        ("UTF-8 local part unknown", b"RCPT TO:<\xc3\xa9t\xc3\xa9@example.test>", "550 5.1.1 "),
        ("RCPT without brackets", b"RCPT TO:mtatest-alice@example.test", "250 2.1.5 Ok"),
        ("RCPT upper-case domain", b"RCPT TO:<mtatest-alice@EXAMPLE.TEST>", "250 2.1.5 Ok"),
        ("RCPT unclosed bracket", b"RCPT TO:<mtatest-alice@example.test", "501 5.1.3 Bad recipient address syntax"),
        ("RCPT route only", b"RCPT TO:<@a:@b>", "501 5.1.3 Bad recipient address syntax"),
        ("RCPT ORCPT", b"RCPT TO:<mtatest-alice@example.test> ORCPT=rfc822;x@y", "555 5.5.4 Unsupported option: ORCPT=rfc822;x@y"),
        ("RCPT quoted local part", b'RCPT TO:<"quoted local"@example.test>', "550 5.1.1 "),
        ("RCPT double at", b"RCPT TO:<a@b@c>", "454 4.7.1 <a@b@c>: Relay access denied"),
        ("RCPT empty", b"RCPT TO:<>", "501 5.1.3 Bad recipient address syntax"),
        ("RCPT space in path", b"RCPT TO:<mtatest-alice @example.test>", "501 5.1.3 Bad recipient address syntax"),
        ("nested MAIL", b"MAIL FROM:<c@d.example>", "503 5.5.1 Error: nested MAIL command"),
        ("DATA with argument", b"DATA now", "501 5.5.4 Syntax: DATA"),
        ("DATA without RCPT", b"DATA", "503 5.5.1 Error: need RCPT command")):
    case("in transaction: " + name, [(MAILRCPT + line + b"\r\n", ["250 ", "250 2.1.0", want])])

for name, line, want in (
        ("invalid UTF-8 in EHLO", b"EHLO \xff", "500 5.5.2 Error: bad UTF-8 syntax"),
        ("NUL in EHLO argument", b"EHLO a\x00b", "500 5.5.2 Error: bad syntax"),
        ("NUL before line end", b"NOOP\x00", "500 5.5.2 Error: bad syntax"),
        ("TLS ClientHello on the clear port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "500 5.5.2 Error: bad syntax"),
        ("PUT", b"PUT / HTTP/1.1", "502 5.5.2 Error: command not recognized"),
        ("OPTIONS", b"OPTIONS * HTTP/1.1", "502 5.5.2 Error: command not recognized"),
        ("POP3 USER", b"USER root", "502 5.5.2 Error: command not recognized"),
        ("IMAP LOGIN", b"A001 LOGIN x y", "502 5.5.2 Error: command not recognized"),
        ("long EHLO", b"EHLO " + b"h" * 1500, "250 CHUNKING"),
        ("long VRFY", b"VRFY " + b"v" * 1000, "252 2.0.0"),
        ("HELO without name", b"HELO", "501 Syntax: HELO hostname"),
        ("MAIL BODY lower case", b"MAIL FROM:<> body=8bitmime smtputf8", "250 2.1.0 Ok"),
        ("MAIL IP literal sender", b"MAIL FROM:<a@[127.0.0.1]>", "250 2.1.0 Ok"),
        ("MAIL without brackets", b"MAIL FROM:a@b.example", "250 2.1.0 Ok"),
        ("MAIL AUTH parameter", b"MAIL FROM:<a@b.example> AUTH=<>", "555 5.5.4 Unsupported option: AUTH=<>"),
        ("MAIL RET parameter", b"MAIL FROM:<a@b.example> RET=FULL", "555 5.5.4 Unsupported option: RET=FULL")):
    case("command: " + name, [(line + b"\r\n", [want])])

case("a thousand pipelined NOOPs", [(b"NOOP\r\n" * 1000, ["250 2.0.0 Ok"] * 1000)])
case("end marker then a command in the same write",
     [(OPEN, OPEN_REPLIES), (b"a\r\n.\r\nRSET\r\n", [QUEUED, "250 2.0.0 Ok"])], [b"a\n"])
for chunk in (b"x\r\n.\r\nMAIL FROM:<evil@example.org>\r\n", b"\r\n.\r\n", b".\r\nQUIT\r\n"):
    steps = [(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + ALICE + b">\r\nBDAT %d LAST\r\n" % len(chunk) + chunk,
              ["250 ", "250 2.1.0", "250 2.1.5", QUEUED]), (b"NOOP\r\n", ["250 2.0.0 Ok"])]
    case("BDAT carrying an end marker %r" % chunk, steps, [chunk.replace(b"\r\n", b"\n")])


class Hostile(SmtpdCase):
    MAIN_CF = "mynetworks = 192.0.2.0/24\n"
    MAIN_CF_NOTE = "127.0.0.1 is outside mynetworks: every relay attempt must be refused"

    def run_case(self, name, steps, bodies, closed, greet):
        before = self.queued()
        r = self.raw(greet=greet)
        try:
            for data, want in steps:
                r.send(data)
                r.expect(*want)
        except Exception as e:
            raise AssertionError("%s: %s" % (name, e))
        if closed:
            self.assertTrue(r.closed(), name)
        r.close()
        time.sleep(0.05)
        got = sorted(body_of(m) for m in self.new_messages(before))
        self.assertEqual(got, sorted(bodies), name)

    def test_battery(self):
        self.assertGreaterEqual(len(CASES), 150)
        failures = []
        for c in CASES:
            try:
                self.run_case(*c)
            except AssertionError as e:
                failures.append(str(e)[:400])
        self.assertNoIncoming()
        self.assertEqual(failures, [], "%d of %d hostile sessions failed" % (len(failures), len(CASES)))

    def test_commands_before_greeting_get_the_greeting_first(self):
        r = self.raw(greet=False)
        r.send("EHLO early\r\n")
        r.expect("220 ", "250 CHUNKING")


class BareNewlineReject(SmtpdCase):
    """smtpd_forbid_bare_newline = yes for a client outside mynetworks (the exclusions)."""
    MAIN_CF = "mynetworks = 192.0.2.0/24\nsmtpd_forbid_bare_newline = yes\n"

    def test_bare_lf_command(self):
        r = self.raw()
        r.send(b"EHLO x\nNOOP\r\n")
        r.expect("521 5.5.2 mx.example.test Error: bare <LF> received")
        self.assertTrue(r.closed())

    def test_bare_lf_in_data(self):
        before = self.queued()
        r = self.raw()
        r.send(OPEN)
        r.expect(*OPEN_REPLIES)
        r.send(b"line\r\nbare\nmore\r\n.\r\n")
        r.expect("521 5.5.2 mx.example.test Error: bare <LF> received")
        self.assertTrue(r.closed())
        self.assertEqual(self.new_messages(before), [])
        self.assertNoIncoming()

    def test_crlf_is_fine(self):
        before = self.queued()
        r = self.raw()
        r.send(OPEN)
        r.expect(*OPEN_REPLIES)
        r.send(b"a\rb\r\n.\r\n")
        r.expect(QUEUED)
        self.assertEqual([body_of(m) for m in self.new_messages(before)], [b"a\rb\n"])


if __name__ == "__main__":
    mtatest.main()
