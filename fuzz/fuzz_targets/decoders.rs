//! Feeds arbitrary bytes through every rmm-opamp decoder and the session logic.
//! None may panic; whatever decodes must re-encode to bytes that decode and
//! re-encode identically (bytes are compared, so NaN doubles are fine).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmm_opamp::client::ClientState;
use rmm_opamp::prost::Message;
use rmm_opamp::proto::{AgentToServer, ServerToAgent};
use rmm_opamp::server::SessionTracker;
use rmm_opamp::{http, ws, InstanceUid, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::new(1 << 20);
    let _ = ws::decode_server_to_agent(data, &limits);
    let _ = http::decode_agent_to_server(data, Some("gzip"), &limits);
    let _ = http::decode_server_to_agent(data, Some("gzip"), &limits);

    if let Ok(msg) = ws::decode_agent_to_server(data, &limits) {
        let bytes = msg.encode_to_vec();
        let again = AgentToServer::decode(bytes.as_slice()).unwrap();
        assert_eq!(again.encode_to_vec(), bytes);
        let _ = SessionTracker::new().observe(msg);
    }
    if let Ok(msg) = http::decode_server_to_agent(data, None, &limits) {
        let bytes = msg.encode_to_vec();
        let again = ServerToAgent::decode(bytes.as_slice()).unwrap();
        assert_eq!(again.encode_to_vec(), bytes);
        let _ = msg.check_exclusivity();
        let mut client = ClientState::new(InstanceUid::from_array([1; 16]), u64::MAX);
        let _ = client.apply(msg);
        let _ = client.next_message();
    }
});
