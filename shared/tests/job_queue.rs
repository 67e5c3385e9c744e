//! Sync jobs through a real SQS API (moto's server on 127.0.0.1): sent, delayed, clamped,
//! received and parsed by the worker's side.

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::db::TenantId;
use shared::job_queue::{JobMessage, JobQueue, MAX_DELAY, QueueError, SendOutcome};
use std::time::{Duration, Instant};
use testkit::moto::Moto;
use uuid::Uuid;

const SECRET_KEY: &str = "sqs-secret-do-not-log-5e1d";

fn client(moto: &Moto) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(Credentials::new("test", SECRET_KEY, None, None, "moto-test"))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A fresh standard queue (servers given by QUODSI_MOTO_ENDPOINT are shared between runs).
async fn create_queue(client: &aws_sdk_sqs::Client) -> String {
    let out = client
        .create_queue()
        .queue_name(format!("quodsi-sync-jobs-{}", Uuid::new_v4().simple()))
        .send()
        .await
        .expect("create_queue on moto");
    out.queue_url().expect("moto returns the queue URL").to_owned()
}

fn message() -> JobMessage {
    JobMessage { tenant_id: TenantId(Uuid::new_v4()), job_id: shared::db::JobId(Uuid::new_v4()) }
}

/// Bodies of the messages visible now (long-polls up to `wait_s`), deleted once read.
async fn receive(client: &aws_sdk_sqs::Client, queue_url: &str, wait_s: i32) -> Vec<String> {
    let out = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_s)
        .send()
        .await
        .expect("receive_message on moto");
    let mut bodies = Vec::new();
    for m in out.messages() {
        bodies.push(m.body().expect("a body").to_owned());
        let handle = m.receipt_handle().expect("a receipt handle");
        client.delete_message().queue_url(queue_url).receipt_handle(handle).send().await.expect("delete_message");
    }
    bodies
}

async fn delayed_count(client: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    let attrs = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("get_queue_attributes on moto");
    attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessagesDelayed))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_sent_message_and_a_delayed_one_are_received_and_parsed_in_turn() {
    // Arrange
    let moto = Moto::start();
    let client = client(&moto);
    let queue_url = create_queue(&client).await;
    let queue = JobQueue::sqs(client.clone(), &queue_url);
    let (now, later) = (message(), message());

    // Act
    let sent_now = queue.send(&now, Duration::ZERO).await.unwrap();
    let sent_later = queue.send(&later, Duration::from_millis(1500)).await.unwrap();
    let first = receive(&client, &queue_url, 0).await;
    let started = Instant::now();
    let mut second = Vec::new();
    while second.is_empty() && started.elapsed() < Duration::from_secs(10) {
        second = receive(&client, &queue_url, 1).await;
    }

    // Assert
    assert!(matches!(sent_now, SendOutcome::Queued { delay: Duration::ZERO, clamped: false, message_id: Some(_) }));
    assert!(matches!(sent_later, SendOutcome::Queued { clamped: false, .. }), "{sent_later:?}");
    let SendOutcome::Queued { delay, .. } = sent_later else { unreachable!() };
    assert_eq!(delay, Duration::from_secs(2), "1.5 s is rounded up to whole seconds");
    assert_eq!(first.len(), 1, "only the undelayed message is visible at once: {first:?}");
    assert_eq!(JobMessage::parse(&first[0]).unwrap(), now);
    assert_eq!(second.len(), 1, "the delayed message arrives later: {second:?}");
    assert_eq!(JobMessage::parse(&second[0]).unwrap(), later);
    assert!(started.elapsed() >= Duration::from_millis(500), "and not at once");
}

#[tokio::test]
async fn a_delay_over_fifteen_minutes_is_cut_to_the_maximum_and_reported() {
    // Arrange
    let moto = Moto::start();
    let client = client(&moto);
    let queue_url = create_queue(&client).await;
    let queue = JobQueue::sqs(client.clone(), &queue_url);

    // Act
    let sent = queue.send(&message(), Duration::from_secs(3600)).await.unwrap();

    // Assert
    match sent {
        SendOutcome::Queued { delay, clamped, .. } => {
            assert_eq!(delay, MAX_DELAY);
            assert!(clamped, "the caller is told the delay was cut");
        }
        other => panic!("expected Queued, got {other:?}"),
    }
    assert_eq!(delayed_count(&client, &queue_url).await, "1", "the message waits on the queue");
    assert!(receive(&client, &queue_url, 0).await.is_empty(), "and is not visible yet");
}

#[tokio::test]
async fn sending_to_a_missing_queue_names_the_queue_and_no_credential() {
    // Arrange
    let moto = Moto::start();
    let client = client(&moto);
    let queue_url = format!("{}/123456789012/quodsi-no-such-queue", moto.endpoint());
    let queue = JobQueue::sqs(client, &queue_url);
    let job = message();

    // Act
    let got = queue.send(&job, Duration::ZERO).await;

    // Assert
    let err = got.expect_err("the queue does not exist");
    assert!(matches!(err, QueueError::Send { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("quodsi-no-such-queue") && text.contains(&job.job_id.to_string()), "{text}");
    assert!(!text.contains(SECRET_KEY) && !format!("{err:?}{queue:?}").contains(SECRET_KEY), "{text}");
}

#[tokio::test]
async fn a_disabled_queue_sends_nothing_and_says_so() {
    // Arrange
    let queue = JobQueue::from_lookup(|_| None).await.unwrap();

    // Act
    let sent = queue.send(&message(), Duration::from_secs(30)).await.unwrap();

    // Assert
    assert_eq!(sent, SendOutcome::Disabled);
    assert_eq!(format!("{queue:?}"), "Disabled");
}
