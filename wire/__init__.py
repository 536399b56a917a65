"""The wire format: what a gateway publishes and what a receiver checks.

The readings, events and other payloads (``payload``), the quality flags a reading carries
(``flags``), the payload's DEFLATE compression (``compression``), the Ed25519 JWS that signs every
message and its strict verifier (``jws``) and the platform's receipts (``receipts``). The agent
writes it, the simulated platform and ``meterlink verify`` read it; it imports nothing of meterlink
above it. docs/wire-format.md describes it for the platform team.
"""
