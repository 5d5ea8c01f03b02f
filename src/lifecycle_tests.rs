use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Component, Lost, Mode, Run, Step, Trouble, Until, Words, drive};
use crate::imap::retry::Class;

#[derive(Debug, thiserror::Error)]
#[error("cannot go on: {0}")]
struct Fatal(&'static str);

/// Plays `script` one entry per step, then idles for an hour; counts what the driver did.
struct Scripted {
    script: Vec<Result<Step, Lost<Fatal>>>,
    steps: Arc<AtomicUsize>,
    said: Vec<String>,
    ended: Option<String>,
    closed: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(mut script: Vec<Result<Step, Lost<Fatal>>>) -> (Scripted, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        script.reverse();
        let (steps, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let scripted = Scripted { script, steps: steps.clone(), said: Vec::new(), ended: None, closed: closed.clone() };
        (scripted, steps, closed)
    }
}

impl Component for Scripted {
    type Error = Fatal;
    const WORDS: Words = Words { login: "cannot log in", lost: "connection lost" };

    async fn step(&mut self, _run: &mut Run) -> Result<Step, Lost<Fatal>> {
        self.steps.fetch_add(1, Ordering::SeqCst);
        self.script.pop().unwrap_or_else(|| Ok(Step::Idle(Until::after(Duration::from_secs(3600)))))
    }

    fn lost(&mut self, said: &str) {
        self.said.push(said.to_owned());
    }

    fn ended(&mut self, error: &Fatal) {
        self.ended = Some(error.to_string());
    }

    async fn close(&mut self) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn trouble(class: Class) -> Lost<Fatal> {
    Lost::Retry(Trouble::new(class, &std::io::Error::other("the server hung up")))
}

#[tokio::test]
async fn a_once_pass_steps_until_done_retrying_a_lost_connection_soon() {
    let (component, steps, closed) =
        Scripted::new(vec![Ok(Step::Worked), Err(trouble(Class::Transient)), Ok(Step::Done)]);
    let ended = tokio::time::timeout(Duration::from_secs(5), drive(component, Mode::Once)).await;
    assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
    assert_eq!((steps.load(Ordering::SeqCst), closed.load(Ordering::SeqCst)), (3, 1));
}

#[tokio::test]
async fn a_fatal_error_ends_the_component_closed_and_told() {
    let (component, steps, closed) = Scripted::new(vec![Err(Lost::Fatal(Fatal("the store failed")))]);
    let (_tx, rx) = watch::channel(false);
    let ended = drive(component, Mode::Daemon(rx)).await;
    assert_eq!(ended.map_err(|e| e.to_string()), Err("cannot go on: the store failed".to_string()));
    assert_eq!((steps.load(Ordering::SeqCst), closed.load(Ordering::SeqCst)), (1, 1));
}

/// Shutdown ends an idle wait and the 15-minute wait after a refused login at once; the
/// refused login is not retried meanwhile.
#[tokio::test]
async fn shutdown_ends_any_wait_at_once() {
    for first in [Ok(Step::Idle(Until::after(Duration::from_secs(3600)))), Err(trouble(Class::Login))] {
        let (component, steps, closed) = Scripted::new(vec![first]);
        let (tx, rx) = watch::channel(false);
        let driven = tokio::spawn(drive(component, Mode::Daemon(rx)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 1, "still waiting");
        let asked = Instant::now();
        tx.send(true).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), driven).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        eprintln!("stopped {:?} after shutdown", asked.elapsed());
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    }
}

/// An idle wait ends at its wake-up, long before its deadline.
#[tokio::test]
async fn a_wake_up_ends_an_idle_wait() {
    let notify = Arc::new(tokio::sync::Notify::new());
    let idle = Until::after(Duration::from_secs(3600)).or_notified(&notify);
    let (component, steps, _closed) = Scripted::new(vec![Ok(Step::Idle(idle)), Ok(Step::Done)]);
    notify.notify_one();
    let ended = tokio::time::timeout(Duration::from_secs(5), drive(component, Mode::Once)).await;
    assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
    assert_eq!(steps.load(Ordering::SeqCst), 2);
}

/// A configuration error is said with what to do about it, once as news; a refused login as
/// it is, with the 15-minute delay.
#[tokio::test]
async fn a_configuration_error_is_said_with_advice_once_and_a_refused_login_waits_long() {
    let mut run = Run::new(Mode::Once);
    let config = || Trouble::new(Class::Config, &std::io::Error::other("cannot read CA file x"));
    let said = run.lost(config());
    assert!(
        said.text.starts_with("cannot read CA file x; fix the config") && said.text.contains("SIGHUP"),
        "{}",
        said.text
    );
    assert!(said.news && said.delay <= Duration::from_secs(1), "{:?}", said.delay);
    assert!(!run.lost(config()).news, "the same configuration error is news once");
    let said = run.lost(Trouble::new(Class::Login, &std::io::Error::other("refused")));
    assert_eq!((said.delay, said.text.as_str(), said.news), (Duration::from_secs(900), "refused", true));
    run.connected();
    assert!(run.lost(config()).news, "after a success it is news again");
}
