//! One request frame in, one response frame out: the request header, the versions served,
//! decoding the request and encoding the response with its header.
//!
//! A frame is `api key i16 | api version i16 | correlation id i32 | ...` (the rest of the
//! header and the body, both decoded by kafka-protocol at the header version the API and
//! version call for). An unknown API key, a version outside [`SUPPORTED_APIS`] or a request
//! that does not decode closes the connection, as Kafka does, except ApiVersions: a client
//! asking with a version the server does not know gets an UNSUPPORTED_VERSION answer at
//! version 0 listing what the server supports, and tries again with one of them.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::server::State;
use super::{admin, codes, data, group, txn};

/// Every request the server answers, as (API key, lowest version, highest version): exactly
/// what its ApiVersions response advertises.
pub const SUPPORTED_APIS: &[(i16, i16, i16)] = &[
    (ApiKey::Produce as i16, 3, 9),
    (ApiKey::Fetch as i16, 4, 12),
    (ApiKey::ListOffsets as i16, 1, 6),
    (ApiKey::Metadata as i16, 0, 12),
    (ApiKey::OffsetCommit as i16, 2, 8),
    (ApiKey::OffsetFetch as i16, 1, 7),
    (ApiKey::FindCoordinator as i16, 0, 3),
    (ApiKey::JoinGroup as i16, 0, 7),
    (ApiKey::Heartbeat as i16, 0, 4),
    (ApiKey::LeaveGroup as i16, 0, 4),
    (ApiKey::SyncGroup as i16, 0, 5),
    (ApiKey::DescribeGroups as i16, 0, 5),
    (ApiKey::ListGroups as i16, 0, 4),
    (ApiKey::ApiVersions as i16, 0, 3),
    (ApiKey::CreateTopics as i16, 2, 7),
    (ApiKey::DeleteTopics as i16, 1, 5),
    (ApiKey::DeleteRecords as i16, 0, 2),
    (ApiKey::InitProducerId as i16, 0, 4),
    (ApiKey::AddPartitionsToTxn as i16, 0, 3),
    (ApiKey::AddOffsetsToTxn as i16, 0, 3),
    (ApiKey::EndTxn as i16, 0, 3),
    (ApiKey::TxnOffsetCommit as i16, 0, 3),
];

/// What a connection does after a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Send this frame (length prefix included).
    Frame(Bytes),
    /// Send nothing (a Produce with acks=0).
    Nothing,
    /// Close the connection, for this reason.
    Close(String),
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// The header's client id.
    pub(crate) id: String,
    /// The connection's peer address.
    pub(crate) host: String,
}

fn supported(key: i16) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Answers one request frame (without its length prefix). The response frame is encoded
/// into `out` and split off it: once the caller has sent and dropped it, `out` takes the
/// same memory back for the next response (no fresh, zeroed pages per fetch).
pub(crate) async fn handle(
    state: &Arc<State>,
    mut frame: Bytes,
    peer: SocketAddr,
    out: &mut BytesMut,
) -> Reply {
    let (Some(key), Some(version), Some(correlation)) =
        (be_i16(&frame, 0), be_i16(&frame, 2), be_i32(&frame, 4))
    else {
        return Reply::Close("a frame shorter than a request header".into());
    };
    let Ok(api) = ApiKey::try_from(key) else {
        return Reply::Close(format!("unknown API key {key}"));
    };
    let Some((min, max)) = supported(key) else {
        return Reply::Close(format!("{api:?} is not supported"));
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            let body = api_versions(ResponseError::UnsupportedVersion.code());
            return Body::of(body).finish(out, api, 0, correlation);
        }
        return Reply::Close(format!(
            "{api:?} version {version} is not supported ({min} to {max} are)"
        ));
    }
    let header = match RequestHeader::decode(&mut frame, api.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Reply::Close(format!("bad request header: {e}")),
    };
    let client = Client {
        id: header
            .client_id
            .as_ref()
            .map_or_else(String::new, |c| c.as_str().to_string()),
        host: format!("/{}", peer.ip()),
    };
    tracing::trace!(%peer, ?api, version, correlation, client = %client.id, "request");
    match serve(state, api, version, &mut frame, &client).await {
        Ok(Some(body)) => body.finish(out, api, version, correlation),
        Ok(None) => Reply::Nothing,
        Err(why) => Reply::Close(format!("{api:?} v{version}: {why}")),
    }
}

/// A response body of any type.
pub(crate) struct Body(Box<Encode>);

/// Encodes a response body at a version.
type Encode = dyn FnOnce(&mut BytesMut, i16) -> Result<(), String> + Send;

impl Body {
    fn of<R: Encodable + Send + 'static>(r: R) -> Self {
        Body(Box::new(move |buf, version| {
            // Sized first: a fetch response's records would otherwise be copied again at
            // each doubling of the buffer.
            buf.reserve(r.compute_size(version).map_err(|e| e.to_string())?);
            r.encode(buf, version).map_err(|e| e.to_string())
        }))
    }

    fn finish(self, buf: &mut BytesMut, api: ApiKey, version: i16, correlation: i32) -> Reply {
        buf.clear();
        buf.reserve(256);
        buf.put_i32(0);
        let header = ResponseHeader::default().with_correlation_id(correlation);
        let encoded = header
            .encode(buf, api.response_header_version(version))
            .map_err(|e| e.to_string())
            .and_then(|()| (self.0)(buf, version));
        if let Err(e) = encoded {
            tracing::error!("cannot encode the {api:?} v{version} response: {e}");
            return Reply::Close(format!("cannot encode the response: {e}"));
        }
        let Ok(len) = i32::try_from(buf.len() - 4) else {
            return Reply::Close("response too large".into());
        };
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Reply::Frame(buf.split().freeze())
    }
}

fn decode<T: Decodable>(frame: &mut Bytes, version: i16) -> Result<T, String> {
    T::decode(frame, version).map_err(|e| format!("malformed request: {e}"))
}

/// Decodes the request of `api`, serves it and returns its response body (`None`: no
/// response, for a Produce with acks=0), or why the connection closes.
async fn serve(
    state: &Arc<State>,
    api: ApiKey,
    version: i16,
    frame: &mut Bytes,
    client: &Client,
) -> Result<Option<Body>, String> {
    let body = match api {
        ApiKey::ApiVersions => {
            let _: ApiVersionsRequest = decode(frame, version)?;
            Body::of(api_versions(codes::NONE))
        }
        ApiKey::Metadata => Body::of(admin::metadata(state, decode(frame, version)?, version)),
        ApiKey::CreateTopics => Body::of(admin::create_topics(
            state,
            decode(frame, version)?,
            version,
        )),
        ApiKey::DeleteTopics => Body::of(admin::delete_topics(state, decode(frame, version)?)),
        ApiKey::FindCoordinator => {
            Body::of(admin::find_coordinator(state, decode(frame, version)?))
        }
        ApiKey::Produce => {
            let request: ProduceRequest = decode(frame, version)?;
            let acks = request.acks;
            let response = data::produce(state, request);
            if acks == 0 {
                return Ok(None);
            }
            Body::of(response)
        }
        ApiKey::Fetch => Body::of(data::fetch(state, decode(frame, version)?, version).await),
        ApiKey::ListOffsets => Body::of(data::list_offsets(state, decode(frame, version)?)),
        ApiKey::DeleteRecords => Body::of(data::delete_records(state, decode(frame, version)?)),
        ApiKey::JoinGroup => {
            Body::of(group::join(state, decode(frame, version)?, version, client).await)
        }
        ApiKey::SyncGroup => Body::of(group::sync(state, decode(frame, version)?, version).await),
        ApiKey::Heartbeat => Body::of(group::heartbeat(state, decode(frame, version)?)),
        ApiKey::LeaveGroup => Body::of(group::leave(state, decode(frame, version)?, version)),
        ApiKey::OffsetCommit => Body::of(group::offset_commit(state, decode(frame, version)?)),
        ApiKey::OffsetFetch => {
            Body::of(group::offset_fetch(state, decode(frame, version)?, version))
        }
        ApiKey::ListGroups => Body::of(group::list_groups(state, decode(frame, version)?, version)),
        ApiKey::DescribeGroups => Body::of(group::describe_groups(state, decode(frame, version)?)),
        ApiKey::InitProducerId => Body::of(txn::init_producer_id(
            state,
            decode(frame, version)?,
            version,
        )),
        ApiKey::AddPartitionsToTxn => {
            Body::of(txn::add_partitions(state, decode(frame, version)?, version))
        }
        ApiKey::AddOffsetsToTxn => {
            Body::of(txn::add_offsets(state, decode(frame, version)?, version))
        }
        ApiKey::TxnOffsetCommit => {
            Body::of(txn::offset_commit(state, decode(frame, version)?, version))
        }
        ApiKey::EndTxn => Body::of(txn::end(state, decode(frame, version)?, version)),
        other => return Err(format!("{other:?} is not served")),
    };
    Ok(Some(body))
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED_APIS
                .iter()
                .map(|(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*key)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
}

/// A `StrBytes` of `s`.
pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
