"""Zeek-compatible ``history`` and ``conn_state`` for a connection.

The letters and states follow Zeek's ``base/protocols/conn/main.zeek`` so a
user can diff pcapstats against a Zeek conn.log. History: upper case for the
originator (client), lower case for the responder; each letter is recorded the
first time it happens in a direction (and ``T``, the retransmission letter, is
left to the caller). Endpoint states follow Zeek's TCP analyzer in outline:
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET.
"""

from __future__ import annotations

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10


class ZeekState:
    __slots__ = ("orig", "resp", "hist", "order_ok", "flipped", "synack_before_syn")

    def __init__(self) -> None:
        self.orig = INACTIVE
        self.resp = INACTIVE
        # the letters recorded, in order (a few at most: each once, so a membership test
        # scans a handful of one-character strings; a set beside it cost 216 bytes a
        # connection, and closed ones are kept a minute of capture time)
        self.hist: list[str] = []
        self.order_ok = False     # SYN, then SYN/ACK, seen in that order
        self.flipped = False
        self.synack_before_syn = False

    def _add(self, letter: str, from_orig: bool) -> None:
        ch = letter if from_orig else letter.lower()
        if ch not in self.hist:
            self.hist.append(ch)

    def packet(self, from_orig: bool, flags: int, plen: int) -> None:
        me = self.orig if from_orig else self.resp
        # fast path: an ACK (maybe PSH) without SYN/FIN/RST on an established endpoint whose
        # letter was already recorded changes nothing
        if me == ESTABLISHED and flags & 0x17 == 0x10:
            ch = ("D" if plen else "A") if from_orig else ("d" if plen else "a")
            if ch in self.hist:
                return
        if flags & _SYN:
            if flags & _RST or flags & _FIN:
                self._add("Q", from_orig)
            if flags & _ACK:
                self._add("H", from_orig)
                if me in (INACTIVE, PARTIAL):
                    me = SYN_ACK_SENT
                peer_syn = (self.resp if from_orig else self.orig) == SYN_SENT
                if peer_syn and not from_orig:
                    self.order_ok = True
                elif not from_orig and self.orig == INACTIVE:
                    self.synack_before_syn = True
            else:
                self._add("S", from_orig)
                if me in (INACTIVE, PARTIAL):
                    me = SYN_SENT
        elif flags & _ACK and not flags & (_FIN | _RST) and plen == 0:
            self._add("A", from_orig)
        if plen:
            self._add("D", from_orig)
        if not flags & _SYN:
            if me == INACTIVE:
                me = PARTIAL
            elif me in (SYN_SENT, SYN_ACK_SENT) and flags & _ACK:
                me = ESTABLISHED
                peer = self.resp if from_orig else self.orig
                if peer in (SYN_SENT, SYN_ACK_SENT):
                    if from_orig:
                        self.resp = ESTABLISHED
                    else:
                        self.orig = ESTABLISHED
        if flags & _FIN:
            self._add("F", from_orig)
            if me != RESET:
                me = CLOSED
        if flags & _RST:
            self._add("R", from_orig)
            me = RESET
        if from_orig:
            self.orig = me
        else:
            self.resp = me

    def add_letter(self, letter: str, from_orig: bool) -> None:
        """Record a letter the caller detected (``T`` retransmission, ``G`` gap)."""
        self._add(letter, from_orig)

    def flip(self) -> None:
        self.orig, self.resp = self.resp, self.orig
        self.hist = [c.swapcase() for c in self.hist]

    def history(self) -> str:
        return ("^" if self.flipped else "") + "".join(self.hist)

    def conn_state(self, orig_bytes: int, resp_bytes: int) -> str:
        os, rs = self.orig, self.resp
        o_inactive = os in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os in (SYN_SENT, SYN_ACK_SENT) or (os == RESET and orig_bytes == 0
                                                  and resp_bytes == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os == RESET:
            if r_inactive:
                h = "".join(self.hist)
                if h.startswith("S") and not any(c in h.split("R")[0] for c in "HAFGIQ"):
                    return "RSTOS0"
                return "OTH"
            return "RSTO"
        if rs == CLOSED and os == CLOSED:
            return "SF"
        if os == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"
