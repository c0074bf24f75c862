//! Dead letters (docs/contract.md §5): the original key and value, with the reason and source headers.

use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::Duration;

use crate::domain::Rejection;

/// Publishes one dead letter and waits for the broker's acknowledgement.
pub(crate) async fn send(
    producer: &FutureProducer,
    topic: &str,
    msg: &OwnedMessage,
    reason: Rejection,
) -> Result<(), rdkafka::error::KafkaError> {
    let error = reason.to_string();
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "error",
            value: Some(error.as_str()),
        })
        .insert(Header {
            key: "source_topic",
            value: Some(msg.topic()),
        })
        .insert(Header {
            key: "source_partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "source_offset",
            value: Some(offset.as_str()),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = msg.key() {
        record = record.key(key);
    }
    if let Some(value) = msg.payload() {
        record = record.payload(value);
    }
    producer
        .send(record, Timeout::After(Duration::from_secs(30)))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}
