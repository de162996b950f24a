"""A small SMTP server on localhost for tests: answers RCPT TO as told and keeps what it is sent."""

import asyncio


class StubSmtpServer:
    """Speaks just enough SMTP; answers each RCPT TO with the next of `rcpt_replies` (then `rcpt_reply`).

    It keeps the DATA of each mail it accepts, and the recipients of each transaction.
    """

    def __init__(self, rcpt_reply: str = "250 OK", *, rcpt_replies: list[str] | None = None, port: int = 0) -> None:
        self.rcpt_reply = rcpt_reply
        self.rcpt_replies = list(rcpt_replies or [])
        self.received: list[bytes] = []
        self.recipients: list[list[str]] = []
        self.connections = 0
        self.port = port
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> "StubSmtpServer":
        self._server = await asyncio.start_server(self._talk, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        self.connections += 1
        accepted: list[str] = []
        await say("220 stub ESMTP")
        while line := await reader.readline():
            words = line.decode().strip().split(" ")
            verb = words[0].upper()
            if verb in ("EHLO", "HELO"):
                await say("250 stub")
            elif verb == "MAIL":
                accepted = []
                await say("250 OK")
            elif verb == "RCPT":
                reply = self.rcpt_replies.pop(0) if self.rcpt_replies else self.rcpt_reply
                if reply.startswith("2"):
                    accepted.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                await say(reply)
            elif verb == "DATA":
                await say("354 go ahead")
                self.received.append(await reader.readuntil(b"\r\n.\r\n"))
                self.recipients.append(accepted)
                await say("250 queued")
            elif verb == "QUIT":
                await say("221 bye")
                break
            else:
                await say("250 OK")
        writer.close()
