//! Dead letters (docs/contract.md §5): the original key and value, with the reason and source headers.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::BaseRecord;
use std::time::Duration;

use crate::domain::Rejection;
use crate::kafka::{send_awaited, Producer};

/// Publishes one dead letter and waits for the broker's acknowledgement.
///
/// A copy refused for its size (over librdkafka's `message.max.bytes` or the topic's limit: an
/// input message near the broker's own limit, with the headers added) is sent again without its
/// value and with a header `value_omitted` giving the value's size in bytes. The original stays
/// at `source_offset` of `source_topic`, and the partition moves on: it never stalls because of
/// what a message holds (docs/contract.md §5).
pub(crate) async fn send<T: Send + Sync + 'static>(
    producer: &Producer<T>,
    topic: &str,
    msg: &OwnedMessage,
    reason: Rejection,
) -> Result<(), KafkaError> {
    let error = reason.to_string();
    match send_one(producer, topic, msg, &error, false).await {
        Err(e) if refused_for_size(&e) && msg.payload().is_some() => {
            tracing::warn!(error = %e, source_topic = msg.topic(), source_partition = msg.partition(), source_offset = msg.offset(), "Dead letter refused for its size; sending it without its value.");
            send_one(producer, topic, msg, &error, true).await
        }
        sent => sent,
    }
}

async fn send_one<T: Send + Sync + 'static>(
    producer: &Producer<T>,
    topic: &str,
    msg: &OwnedMessage,
    error: &str,
    omit_value: bool,
) -> Result<(), KafkaError> {
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    let omitted = msg.payload().map(|v| v.len().to_string());
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "error",
            value: Some(error),
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
    if omit_value {
        headers = headers.insert(Header {
            key: "value_omitted",
            value: omitted.as_deref(),
        });
    }
    let record = |on| {
        let mut record: BaseRecord<'_, [u8], [u8], _> =
            BaseRecord::with_opaque_to(topic, on).headers(headers);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        if let Some(value) = msg.payload().filter(|_| !omit_value) {
            record = record.payload(value);
        }
        record
    };
    send_awaited(producer, record, Duration::from_secs(30)).await
}

/// Whether librdkafka or the broker refused a record for its size: sending it again as it is
/// can never succeed.
fn refused_for_size(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
        )
    )
}
