//! Identity documents from the network: DID documents (did:web, PLC), PLC operations and audit
//! logs as our PLC directory receives them. Never panics.
#![no_main]

use berth::identity::did_doc::DidDocument;
use berth::plc::operation::{LogEntry, SignedOp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = DidDocument::from_json(berth_fuzz::DID, data) {
        let _ = doc.atproto_signing_key();
        let _ = doc.pds_endpoint();
        let _ = doc.handle();
        let _ = doc.to_json();
    }
    if let Ok(op) = SignedOp::from_json_slice(data) {
        let _ = op.check_size();
        let _ = op.check_constraints();
        let _ = op.cid();
        let _ = op.did();
        let _ = op.prev_cid();
        let _ = op.state();
        if let Some(state) = op.state() {
            let _ = op.verify(&state.rotation_keys);
        }
        let _ = berth::plc::audit::assure_valid_genesis(berth_fuzz::DID, &op);
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(entries) = LogEntry::parse_log(&value)
        && let Some(first) = entries.first()
    {
        let _ = berth::plc::audit::validate_audit_log(&first.did, &entries);
    }
});
