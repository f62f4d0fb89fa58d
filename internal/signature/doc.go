// Package signature owns webhook secrets and the signatures that let a
// consumer prove a request came from walhook and was not replayed.
//
// Every delivery carries two independent signature schemes, so consumers
// written against either one keep working:
//
//	Standard Webhooks (https://www.standardwebhooks.com)
//	  webhook-id          message id, stable across retries (idempotency key)
//	  webhook-timestamp   unix seconds
//	  webhook-signature   "v1,<base64 HMAC-SHA256>" per secret, space-separated
//	  signed content      id + "." + timestamp + "." + raw body
//	  key                 base64 decode of the secret after "whsec_"
//
//	original walhook design ("legacy")
//	  X-Webhook-Delivery  message id (same value as webhook-id)
//	  X-Webhook-Timestamp unix seconds (same value as webhook-timestamp)
//	  X-Webhook-Signature "sha256=<hex HMAC-SHA256>", current secret only
//	  signed content      timestamp + "." + raw body
//	  key                 the secret string's bytes as written, "whsec_" included
//
// The legacy key is the literal string rather than the decoded bytes because
// that is what consumers of the original design already configured; changing
// it would silently break them.
//
// Invariants:
//
//   - Signatures are compared only with hmac.Equal on their canonical text
//     encoding, never decoded first: decoding is malleable (base64 ignores CR/LF
//     and may ignore trailing bits, hex accepts upper case), and comparing the
//     exact bytes keeps "accepted" equivalent to "the signer produced exactly
//     this entry".
//   - A timestamp is accepted only within ±tolerance of the verifier's clock
//     (DefaultTolerance, 5 minutes). The timestamp is inside the signed content,
//     so the window cannot be moved without breaking the signature, and a
//     captured request stops being replayable once it ages out.
//   - During a secret rotation a Signer holds the new secret first and the old
//     ones after it. The Standard Webhooks header lists one entry per secret in
//     that order, so consumers holding either secret verify; the legacy header
//     has room for one signature and always uses the newest secret.
//   - Secrets never appear in error messages, since errors end up in logs.
//
// A Signer is immutable after NewSigner apart from a sync.Pool of HMAC states:
// building an HMAC costs several allocations and hashing the key twice, which
// matters at tens of thousands of deliveries per second, so each Sign borrows
// a ready state, Resets it and returns it. The package holds no mutable
// package-level state.
package signature
