"""Inheritance (issue #18): a beneficiary named by the owner claims the funds after a
long, contestable waiting period. Built from recovery's parts: the SLIP-39 holders, the
sealed operator share, reminders, the completion proof and a server-built sweep that
the signing gate cosigns."""
