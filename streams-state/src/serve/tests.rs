//! The server spoken to with kafka-protocol's own request encoders: every advertised API
//! at every advertised version answers with a response that decodes, what is not served
//! closes the connection, and random frames never take the dispatcher down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::dispatch::{self, Reply, SUPPORTED_APIS};
use super::server::State;
use super::{ServeConfig, Server, ServerHandle, data, group, txn};
use crate::{LogEngine, TopicConfig};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

fn start() -> (tempfile::TempDir, Arc<LogEngine>, ServerHandle) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(LogEngine::open(dir.path()).unwrap());
    engine.create_topic("t", TopicConfig::new(2)).unwrap();
    let config = ServeConfig {
        max_frame_bytes: 1 << 20,
        ..ServeConfig::default()
    };
    let server = Server::start_with(engine.clone(), "127.0.0.1:0", config).unwrap();
    (dir, engine, server)
}

fn connect(server: &ServerHandle) -> TcpStream {
    let c = TcpStream::connect(server.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

fn send_frame(c: &mut TcpStream, body: &[u8]) {
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    c.write_all(&frame).unwrap();
}

/// The next response frame, or `None` if the server closed the connection.
fn read_frame(c: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    c.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    c.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// A request header of `api` at `version`, from client `unit`.
fn header(api: ApiKey, version: i16, correlation: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(s("unit")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    buf
}

fn request_frame<R: Encodable>(api: ApiKey, version: i16, correlation: i32, req: &R) -> Bytes {
    let mut buf = header(api, version, correlation);
    req.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encoding {api:?} v{version}: {e}"));
    buf.freeze()
}

/// Sends `req` and decodes the response.
fn call<Req: Encodable, Resp: Decodable>(
    c: &mut TcpStream,
    api: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    send_frame(c, &request_frame(api, version, 4242, req));
    let mut body = read_frame(c).unwrap_or_else(|| panic!("{api:?} v{version}: closed"));
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 4242);
    let resp = Resp::decode(&mut body, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version} response: {e}"));
    assert!(!body.has_remaining(), "{api:?} v{version}: bytes left over");
    resp
}

fn versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (_, min, max) = SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api as i16)
        .copied()
        .unwrap();
    min..=max
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: IndexMap::new(),
        })
        .collect();
    encode(&records)
}

/// `records` as one uncompressed v2 record batch.
fn encode(records: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

#[test]
fn every_advertised_api_answers_at_every_advertised_version() {
    let (_dir, engine, server) = start();
    let mut c = connect(&server);
    for v in versions(ApiKey::ApiVersions) {
        let r: ApiVersionsResponse = call(
            &mut c,
            ApiKey::ApiVersions,
            v,
            &ApiVersionsRequest::default(),
        );
        assert_eq!(r.error_code, 0);
        let listed: Vec<(i16, i16, i16)> = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        assert_eq!(
            listed, SUPPORTED_APIS,
            "ApiVersions v{v} lists what is served"
        );
    }
    for v in versions(ApiKey::Metadata) {
        let req = MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic("t"))),
        ]));
        let r: MetadataResponse = call(&mut c, ApiKey::Metadata, v, &req);
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].partitions.len(), 2, "v{v}");
        assert_eq!(r.brokers[0].port, i32::from(server.local_addr().port()));
    }
    let mut produced = 0;
    for v in versions(ApiKey::Produce) {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic("t"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(&["a", "b"]))),
                    ]),
            ]);
        let r: ProduceResponse = call(&mut c, ApiKey::Produce, v, &req);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, produced), "v{v}");
        produced += 2;
    }
    assert_eq!(engine.offsets("t", 0).unwrap().1, produced);
    for v in versions(ApiKey::Fetch) {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(2)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let r: FetchResponse = call(&mut c, ApiKey::Fetch, v, &req);
        let p = &r.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (0, produced), "v{v}");
        let mut records = p.records.clone().unwrap();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap();
        let offsets: Vec<i64> = sets
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.offset))
            .collect();
        assert_eq!(offsets, (2..produced).collect::<Vec<_>>(), "v{v}");
    }
    for v in versions(ApiKey::ListOffsets) {
        let req = ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(1001),
                ]),
        ]);
        let r: ListOffsetsResponse = call(&mut c, ApiKey::ListOffsets, v, &req);
        let p = &r.topics[0].partitions[0];
        // Every batch holds timestamps 1000 and 1001: the first 1001 is offset 1.
        assert_eq!((p.error_code, p.offset, p.timestamp), (0, 1, 1001), "v{v}");
    }
    for v in versions(ApiKey::CreateTopics) {
        let name = format!("sweep-{v}");
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(topic(&name))
                    .with_num_partitions(3)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(s("cleanup.policy"))
                            .with_value(Some(s("compact"))),
                    ]),
            ]);
        let r: CreateTopicsResponse = call(&mut c, ApiKey::CreateTopics, v, &req);
        assert_eq!(r.topics[0].error_code, 0, "v{v}");
        let config = engine.topic_config(&name).unwrap();
        assert_eq!(config.partitions, 3);
        assert_eq!(config.cleanup, crate::CleanupPolicy::Compact);
    }
    for v in versions(ApiKey::DeleteTopics) {
        // Versions 1 to 5 delete the topics created at versions 3 to 7.
        let name = format!("sweep-{}", v + 2);
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_topic_names(vec![topic(&name)]);
        let r: DeleteTopicsResponse = call(&mut c, ApiKey::DeleteTopics, v, &req);
        assert_eq!(r.responses[0].error_code, 0, "v{v}");
        assert!(engine.topic_config(&name).is_none());
    }
    for v in versions(ApiKey::DeleteRecords) {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(i64::from(v) + 1),
                    ]),
            ]);
        let r: DeleteRecordsResponse = call(&mut c, ApiKey::DeleteRecords, v, &req);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (0, i64::from(v) + 1),
            "v{v}"
        );
    }
    for v in versions(ApiKey::FindCoordinator) {
        let req = FindCoordinatorRequest::default().with_key(s("g"));
        let r: FindCoordinatorResponse = call(&mut c, ApiKey::FindCoordinator, v, &req);
        assert_eq!((r.error_code, r.node_id.0), (0, 0), "v{v}");
        assert_eq!(r.port, i32::from(server.local_addr().port()));
    }
    for v in versions(ApiKey::OffsetCommit) {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(i64::from(v) + 10),
                    ]),
            ]);
        let r: OffsetCommitResponse = call(&mut c, ApiKey::OffsetCommit, v, &req);
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
        assert_eq!(engine.committed("g", "t", 1), Some(i64::from(v) + 10));
    }
    for v in versions(ApiKey::OffsetFetch) {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partition_indexes(vec![0, 1]),
            ]));
        let r: OffsetFetchResponse = call(&mut c, ApiKey::OffsetFetch, v, &req);
        let offsets: Vec<i64> = r.topics[0]
            .partitions
            .iter()
            .map(|p| p.committed_offset)
            .collect();
        assert_eq!(
            offsets,
            [-1, engine.committed("g", "t", 1).unwrap()],
            "v{v}"
        );
    }
    for v in versions(ApiKey::JoinGroup) {
        // No protocol: refused at once (the full protocol is the rdkafka tests').
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_session_timeout_ms(10_000)
            .with_protocol_type(s("consumer"));
        let r: JoinGroupResponse = call(&mut c, ApiKey::JoinGroup, v, &req);
        assert_eq!(r.error_code, 23, "v{v}: INCONSISTENT_GROUP_PROTOCOL");
    }
    for v in versions(ApiKey::SyncGroup) {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s("nobody"));
        let r: SyncGroupResponse = call(&mut c, ApiKey::SyncGroup, v, &req);
        assert_eq!(r.error_code, 25, "v{v}: UNKNOWN_MEMBER_ID");
    }
    for v in versions(ApiKey::Heartbeat) {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s("nobody"));
        let r: HeartbeatResponse = call(&mut c, ApiKey::Heartbeat, v, &req);
        assert_eq!(r.error_code, 25, "v{v}");
    }
    for v in versions(ApiKey::LeaveGroup) {
        let req = if v < 3 {
            LeaveGroupRequest::default().with_member_id(s("nobody"))
        } else {
            LeaveGroupRequest::default().with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(s("nobody")),
            ])
        }
        .with_group_id(GroupId(s("g")));
        let r: LeaveGroupResponse = call(&mut c, ApiKey::LeaveGroup, v, &req);
        let code = if v < 3 {
            r.error_code
        } else {
            r.members[0].error_code
        };
        assert_eq!(code, 25, "v{v}");
    }
    for v in versions(ApiKey::ListGroups) {
        let r: ListGroupsResponse =
            call(&mut c, ApiKey::ListGroups, v, &ListGroupsRequest::default());
        let names: Vec<&str> = r.groups.iter().map(|g| g.group_id.0.as_str()).collect();
        assert_eq!(names, ["g"], "v{v}: the group with offsets");
    }
    for v in versions(ApiKey::DescribeGroups) {
        let req =
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g")), GroupId(s("none"))]);
        let r: DescribeGroupsResponse = call(&mut c, ApiKey::DescribeGroups, v, &req);
        let states: Vec<&str> = r.groups.iter().map(|g| g.group_state.as_str()).collect();
        assert_eq!(states, ["Empty", "Dead"], "v{v}");
    }
    for v in versions(ApiKey::InitProducerId) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("tx"))))
            .with_transaction_timeout_ms(10_000)
            .with_producer_id((-1).into());
        let r: InitProducerIdResponse = call(&mut c, ApiKey::InitProducerId, v, &req);
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(
            r.producer_epoch,
            v - versions(ApiKey::InitProducerId).start()
        );
        let idempotent: InitProducerIdResponse = call(
            &mut c,
            ApiKey::InitProducerId,
            v,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(10_000)
                .with_producer_id((-1).into()),
        );
        assert!(
            idempotent.producer_id.0 > r.producer_id.0,
            "{idempotent:?} {r:?}"
        );
        assert_eq!(idempotent.producer_epoch, 0);
    }
    let current = engine
        .transactions()
        .into_iter()
        .find(|t| t.transactional_id == "tx")
        .unwrap()
        .producer;
    for v in versions(ApiKey::AddPartitionsToTxn) {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
            .with_v3_and_below_producer_id(current.id.into())
            .with_v3_and_below_producer_epoch(current.epoch)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![1, 7]),
            ]);
        let r: AddPartitionsToTxnResponse = call(&mut c, ApiKey::AddPartitionsToTxn, v, &req);
        let codes: Vec<i16> = r.results_by_topic_v3_and_below[0]
            .results_by_partition
            .iter()
            .map(|p| p.partition_error_code)
            .collect();
        // Partition 7 does not exist: it fails, the other is not attempted.
        assert_eq!(codes, [55, 3], "v{v}");
    }
    for v in versions(ApiKey::AddOffsetsToTxn) {
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_producer_id(current.id.into())
            .with_producer_epoch(current.epoch - 1)
            .with_group_id(GroupId(s("g")));
        let r: AddOffsetsToTxnResponse = call(&mut c, ApiKey::AddOffsetsToTxn, v, &req);
        let fenced = if v >= 2 { 90 } else { 47 };
        assert_eq!(r.error_code, fenced, "v{v}: an older epoch is fenced");
    }
    for v in versions(ApiKey::TxnOffsetCommit) {
        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_group_id(GroupId(s("g")))
            .with_producer_id(current.id.into())
            .with_producer_epoch(current.epoch)
            .with_generation_id(-1)
            .with_topics(vec![
                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(99),
                    ]),
            ]);
        let r: TxnOffsetCommitResponse = call(&mut c, ApiKey::TxnOffsetCommit, v, &req);
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
    }
    for v in versions(ApiKey::EndTxn) {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_producer_id(current.id.into())
            .with_producer_epoch(current.epoch)
            .with_committed(true);
        let r: EndTxnResponse = call(&mut c, ApiKey::EndTxn, v, &req);
        assert_eq!(r.error_code, 0, "v{v}");
    }
    assert_eq!(
        engine.committed("g", "t", 0),
        Some(99),
        "committed with EndTxn"
    );
}

/// A frame of `api` at `version`: a request header, then `body` as it is.
fn raw_frame(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut buf = header(api, version, 5);
    buf.put_slice(body);
    buf.freeze()
}

/// Asserts that the server closes a new connection on which `frame` is sent.
fn assert_closes(server: &ServerHandle, frame: &[u8]) {
    let mut c = connect(server);
    send_frame(&mut c, frame);
    assert!(read_frame(&mut c).is_none(), "closed after {frame:?}");
}

/// Asserts that an ApiVersions request on `c` gets an answer without error.
fn assert_answers(c: &mut TcpStream) {
    let r: ApiVersionsResponse = call(c, ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

/// Element counts claiming billions of elements in a few bytes: the decoder preallocated
/// room for them and the failed allocation aborted the whole process (this test's too)
/// until kafka-protocol was patched (streams-state/vendor/README.md). Now the request is
/// refused like any other that does not decode.
#[test]
fn huge_element_counts_get_errors_not_an_abort() {
    let (_dir, _engine, server) = start();
    let metadata = versions(ApiKey::Metadata);
    let (plain, flexible) = (*metadata.start(), *metadata.end());
    assert!(plain < 9 && flexible >= 9, "{metadata:?}");
    let mut frames = vec![
        // Metadata's topics: an array of i32::MAX names (4 bytes), and nothing after.
        raw_frame(ApiKey::Metadata, plain, &i32::MAX.to_be_bytes()),
        // The same as a compact array: 2^32 - 2 elements (a 5-byte varint).
        raw_frame(ApiKey::Metadata, flexible, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    // A count that fits in the frame but not in the bytes left after it.
    let mut body = BytesMut::new();
    body.put_i32(1 << 20);
    body.put_slice(&[0; 64]);
    frames.push(raw_frame(ApiKey::Metadata, plain, &body));
    for frame in &frames {
        assert_closes(&server, frame);
    }
    // The server (and this process) live on.
    assert_answers(&mut connect(&server));
}

#[test]
fn what_is_not_served_closes_the_connection_and_the_server_goes_on() {
    let (_dir, _engine, server) = start();
    // An API version the server does not know: ApiVersions answers at version 0.
    let mut c = connect(&server);
    send_frame(
        &mut c,
        &request_frame(ApiKey::ApiVersions, 3, 9, &ApiVersionsRequest::default())
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 3 { 99 } else { *b })
            .collect::<Vec<u8>>(),
    );
    let mut body = read_frame(&mut c).unwrap();
    assert_eq!(
        ResponseHeader::decode(&mut body, 0).unwrap().correlation_id,
        9
    );
    let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert_eq!(r.api_keys.len(), SUPPORTED_APIS.len());
    let closes = |frame: &[u8]| assert_closes(&server, frame);
    // An unknown API key, an API not served, a version not served, a truncated header, a
    // body that does not decode.
    closes(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
    closes(&request_frame(
        ApiKey::SaslHandshake,
        1,
        1,
        &SaslHandshakeRequest::default(),
    ));
    closes(&request_frame(
        ApiKey::Fetch,
        13,
        1,
        &FetchRequest::default(),
    ));
    closes(&[0, 3]);
    closes(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 5, 1]);
    // Frames too large or of a negative size.
    for len in [(1 << 20) + 1, -5i32] {
        let mut c = connect(&server);
        c.write_all(&len.to_be_bytes()).unwrap();
        assert!(read_frame(&mut c).is_none());
    }
    // The server still answers.
    assert_answers(&mut connect(&server));
}

#[test]
fn a_produce_with_acks_0_gets_no_response_and_a_retried_batch_is_written_once() {
    let (_dir, engine, server) = start();
    let mut c = connect(&server);
    let produce = |acks: i16, producer: i64, sequence: i32| {
        let mut records = batch(&["x", "y"]);
        if producer >= 0 {
            // Re-encode with the producer's id, epoch and sequence.
            let rs: Vec<Record> =
                kafka_protocol::records::RecordBatchDecoder::decode(&mut records.clone())
                    .unwrap()
                    .records
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| Record {
                        producer_id: producer,
                        producer_epoch: 0,
                        sequence: sequence + i as i32,
                        ..r
                    })
                    .collect();
            records = encode(&rs);
        }
        ProduceRequest::default()
            .with_acks(acks)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic("t"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(records)),
                    ]),
            ])
    };
    send_frame(
        &mut c,
        &request_frame(ApiKey::Produce, 9, 1, &produce(0, -1, 0)),
    );
    // The next response is the ApiVersions one: the acks=0 produce had none.
    assert_answers(&mut c);
    assert_eq!(engine.offsets("t", 1).unwrap().1, 2);
    let base = |r: ProduceResponse| {
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    };
    let first: ProduceResponse = call(&mut c, ApiKey::Produce, 9, &produce(1, 5, 0));
    assert_eq!(base(first), (0, 2));
    let retried: ProduceResponse = call(&mut c, ApiKey::Produce, 9, &produce(1, 5, 0));
    assert_eq!(
        base(retried),
        (0, 2),
        "the original's offset, nothing appended"
    );
    let gap: ProduceResponse = call(&mut c, ApiKey::Produce, 9, &produce(1, 5, 7));
    assert_eq!(base(gap), (45, -1), "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let next: ProduceResponse = call(&mut c, ApiKey::Produce, 9, &produce(1, 5, 2));
    assert_eq!(base(next), (0, 4));
    assert_eq!(engine.offsets("t", 1).unwrap().1, 6);
}

fn test_state(engine: Arc<LogEngine>) -> Arc<State> {
    Arc::new(State {
        engine,
        config: ServeConfig::default(),
        host: "127.0.0.1".into(),
        port: 9092,
        appended: tokio::sync::Notify::new(),
        producers: data::Producers::default(),
        groups: group::Coordinator::new(Duration::ZERO),
        txns: txn::Transactions::default(),
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Random request frames (any API key and version, a client id, then a few body bytes)
    /// get an answer or a closed connection, never a panic. The body is at most 3 bytes:
    /// kafka-protocol 0.18 sizes a decoded array's `Vec` from its length prefix before
    /// checking it against the bytes left, so a longer random body can ask for an
    /// allocation that aborts the process (see docs/SERVE.md, "Limits").
    #[test]
    fn random_frames_never_panic_the_dispatcher(
        key in proptest::prop_oneof![
            proptest::sample::select(SUPPORTED_APIS.iter().map(|(k, _, _)| *k).collect::<Vec<_>>()),
            proptest::prelude::any::<i16>(),
        ],
        version in -2i16..20,
        client in proptest::option::of("[a-z]{0,8}"),
        flexible_header in proptest::prelude::any::<bool>(),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=3),
        raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(LogEngine::open(dir.path()).unwrap());
        engine.create_topic("t", TopicConfig::new(1)).unwrap();
        let state = test_state(engine);
        let mut frame = BytesMut::new();
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(1);
        match &client {
            Some(c) => {
                frame.put_i16(c.len() as i16);
                frame.put_slice(c.as_bytes());
            }
            None => frame.put_i16(-1),
        }
        if flexible_header {
            frame.put_u8(0); // no tagged fields
        }
        frame.put_slice(&body);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let peer = "127.0.0.1:1".parse().unwrap();
        for f in [frame.freeze(), Bytes::from(raw)] {
            let reply = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), dispatch::handle(&state, f, peer, &mut bytes::BytesMut::new())).await
            });
            let reply = reply.expect("answered in time");
            if let Reply::Frame(b) = reply {
                proptest::prop_assert!(b.len() >= 8, "a response frame with its header");
            }
        }
    }
}

#[test]
fn read_batches_shows_producers_and_markers_and_hides_aborted_batches_from_read_committed() {
    use crate::{Isolation, NewRecord};
    let dir = tempfile::tempdir().unwrap();
    let e = LogEngine::open(dir.path()).unwrap();
    e.create_topic("t", TopicConfig::new(1)).unwrap();
    let rec = |v: &str| NewRecord {
        timestamp: 5,
        key: None,
        value: Some(v.as_bytes().to_vec()),
        headers: Vec::new(),
    };
    let p = e.init_producer_id("x").unwrap();
    e.append("t", 0, &[rec("plain")]).unwrap(); // 0
    e.append_transactional("x", p, "t", 0, &[rec("c1"), rec("c2")])
        .unwrap(); // 1-2
    e.end_transaction("x", p, true).unwrap(); // marker 3
    e.append_transactional("x", p, "t", 0, &[rec("a1")])
        .unwrap(); // 4
    e.end_transaction("x", p, false).unwrap(); // marker 5
    e.append_transactional("x", p, "t", 0, &[rec("open")])
        .unwrap(); // 6, open
    // (base, next, producer, transactional, marker, values)
    type Shape = (i64, i64, Option<i64>, bool, Option<bool>, Vec<String>);
    let shape = |isolation, from| -> (Vec<Shape>, i64) {
        let (batches, next) = e.read_batches("t", 0, from, usize::MAX, isolation).unwrap();
        let shapes = batches
            .into_iter()
            .map(|b| {
                (
                    b.base,
                    b.next,
                    b.producer.map(|p| p.id),
                    b.transactional,
                    b.marker,
                    b.records
                        .iter()
                        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
                        .collect(),
                )
            })
            .collect();
        (shapes, next)
    };
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let id = Some(p.id);
    assert_eq!(
        shape(Isolation::ReadUncommitted, 0),
        (
            vec![
                (0, 1, None, false, None, v(&["plain"])),
                (1, 3, id, true, None, v(&["c1", "c2"])),
                (3, 4, id, true, Some(true), v(&[])),
                (4, 5, id, true, None, v(&["a1"])),
                (5, 6, id, true, Some(false), v(&[])),
                (6, 7, id, true, None, v(&["open"])),
            ],
            7
        )
    );
    // read_committed: up to the open transaction, without the aborted batch.
    assert_eq!(
        shape(Isolation::ReadCommitted, 2),
        (
            vec![
                (1, 3, id, true, None, v(&["c2"])),
                (3, 4, id, true, Some(true), v(&[])),
                (5, 6, id, true, Some(false), v(&[])),
            ],
            6
        )
    );
    // The Kafka encoding of those batches: one Kafka batch each, the markers as control
    // batches whose key says commit or abort.
    let (batches, _) = e
        .read_raw_batches("t", 0, 0, usize::MAX, Isolation::ReadUncommitted)
        .unwrap();
    let mut encoded = data::encode_batches(batches, 0).unwrap();
    let infos =
        kafka_protocol::records::RecordBatchDecoder::decode_batch_info(&mut encoded.clone())
            .unwrap();
    let controls: Vec<(i64, bool, bool)> = infos
        .iter()
        .map(|i| (i.min_offset, i.transactional, i.control))
        .collect();
    assert_eq!(
        controls,
        [
            (0, false, false),
            (1, true, false),
            (3, true, true),
            (4, true, false),
            (5, true, true),
            (6, true, false)
        ]
    );
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut encoded).unwrap();
    let commit_key = sets[2].records[0].key.clone().unwrap();
    let abort_key = sets[4].records[0].key.clone().unwrap();
    assert_eq!(
        (&commit_key[..], &abort_key[..]),
        (&[0u8, 0, 0, 1][..], &[0u8, 0, 0, 0][..])
    );
    let values = |sets: &[kafka_protocol::records::RecordSet]| -> Vec<(i64, String)> {
        sets.iter()
            .flat_map(|s| &s.records)
            .filter(|r| !r.control)
            .map(|r| {
                let v = r.value.as_deref().unwrap_or_default();
                (r.offset, String::from_utf8_lossy(v).into_owned())
            })
            .collect()
    };
    assert_eq!(
        values(&sets),
        [(0, "plain"), (1, "c1"), (2, "c2"), (4, "a1"), (6, "open")]
            .map(|(o, v)| (o, v.to_string()))
    );
    // From the middle of a batch: the records before the fetch offset are left out.
    let (batches, _) = e
        .read_raw_batches("t", 0, 2, usize::MAX, Isolation::ReadUncommitted)
        .unwrap();
    let mut encoded = data::encode_batches(batches, 2).unwrap();
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut encoded).unwrap();
    assert_eq!(
        values(&sets),
        [(2, "c2"), (4, "a1"), (6, "open")].map(|(o, v)| (o, v.to_string()))
    );
}
