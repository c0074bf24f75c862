//! Dead letters (docs/contract.md §5): the original key and value, with the reason and source headers.

use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::BaseRecord;
use std::time::Duration;

use crate::domain::Rejection;
use crate::kafka::{send_awaited, Producer};

/// Publishes one dead letter and waits for the broker's acknowledgement.
pub(crate) async fn send<T: Send + Sync + 'static>(
    producer: &Producer<T>,
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
    let record = |on| {
        let mut record: BaseRecord<'_, [u8], [u8], _> =
            BaseRecord::with_opaque_to(topic, on).headers(headers);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        if let Some(value) = msg.payload() {
            record = record.payload(value);
        }
        record
    };
    send_awaited(producer, record, Duration::from_secs(30)).await
}
