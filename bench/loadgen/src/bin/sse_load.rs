//! `sse-load`: opens `--streams` concurrent token streams (spread over `--ramp-ms`) and times
//! every frame: time to first token from the request, every gap between two tokens, and per
//! stream whether all `--expect-tokens` tokens arrived, in order (the answer text must equal
//! the one most streams received: every stream asks the same question). Prints one JSON
//! object on stdout; prints `all-streams-open` on stderr once every stream has received its
//! first event, so a harness can measure memory (or start publishing) while all are open.
//!
//! The `progress` dialect is for sluice's progress streams: the harness publishes progress
//! messages `bench:<seq>:<unix nanos>`; each one counts as a token, its publish-to-receive
//! time is recorded, `seq` must arrive in order, and the stream is closed after
//! `--expect-tokens` of them.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_loadgen::h1_client::PreparedRequests;
use sluice_loadgen::latency::{Samples, Summary};
use sluice_loadgen::request_spec::RequestSpec;
use sluice_loadgen::sse_frames::{Frame, FrameParser};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Concurrent SSE token streams; JSON summary on stdout")]
struct Args {
    /// Target URL (or `--urls-file`).
    #[arg(long)]
    url: Option<String>,
    /// URLs, one a line; stream `i` uses line `i % lines`.
    #[arg(long)]
    urls_file: Option<String>,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// JSON body sent with every request.
    #[arg(long)]
    body: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Bearer tokens, one a line; stream `i` uses line `i % lines`.
    #[arg(long)]
    tokens_file: Option<String>,
    /// How the stream is framed.
    #[arg(long, value_enum, default_value_t = Dialect::Ai)]
    dialect: Dialect,
    /// Concurrent streams.
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Streams are opened evenly over this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    ramp_ms: u64,
    /// Tokens every stream should deliver.
    #[arg(long, default_value_t = 200)]
    expect_tokens: usize,
    /// Longest silence on a stream before it counts as failed.
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Also writes one CSV line per stream to this file (when it was opened, when its head,
    /// first event and first token came, its longest gap and where), to tell a slow start
    /// from a slow relay when a tail needs explaining.
    #[arg(long)]
    timeline: Option<String>,
}

/// The two stream dialects the benchmark meets.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dialect {
    /// `event: token` `data: {"content"}` … `event: complete` (sluice and the AI service).
    Ai,
    /// OpenAI `data: {chat.completion.chunk}` … `data: [DONE]`.
    Openai,
    /// sluice's `event: progress` stream carrying the harness's stamped messages.
    Progress,
}

/// What one frame meant.
enum Seen<'a> {
    Token(Cow<'a, str>),
    Stamped { seq: u64, published_nanos: u128 },
    End,
    Failure(String),
    Other,
}

/// The `data` of an AI service (or sluice) `token` event, read in place.
#[derive(Deserialize)]
struct TokenData<'a> {
    #[serde(borrow)]
    content: Cow<'a, str>,
}

/// An OpenAI `chat.completion.chunk` (or an error object), read in place: only the first
/// choice's content matters.
#[derive(Deserialize)]
struct ChunkData<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Delta<'a>,
}

#[derive(Deserialize, Default)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

impl Dialect {
    fn read(self, frame: Frame<'_>) -> Seen<'_> {
        match self {
            Dialect::Ai => match frame.event {
                "token" => match serde_json::from_str::<TokenData>(frame.data) {
                    Ok(token) => Seen::Token(token.content),
                    Err(_) => Seen::Failure("malformed_token".into()),
                },
                "complete" => Seen::End,
                "error" => Seen::Failure("error_event".into()),
                _ => Seen::Other,
            },
            Dialect::Openai => {
                if frame.data.trim() == "[DONE]" {
                    return Seen::End;
                }
                match serde_json::from_str::<ChunkData>(frame.data) {
                    Ok(chunk) if chunk.error.is_some() => Seen::Failure("error_chunk".into()),
                    Ok(chunk) => match chunk.choices.into_iter().next() {
                        Some(Choice {
                            delta:
                                Delta {
                                    content: Some(content),
                                },
                        }) if !content.is_empty() => Seen::Token(content),
                        _ => Seen::Other,
                    },
                    Err(_) => Seen::Failure("malformed_chunk".into()),
                }
            }
            Dialect::Progress => match frame.event {
                "progress" => serde_json::from_str::<Value>(frame.data)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).and_then(stamp))
                    .map_or(Seen::Other, |(seq, published_nanos)| Seen::Stamped {
                        seq,
                        published_nanos,
                    }),
                "complete" => Seen::End,
                "error" => Seen::Failure("error_event".into()),
                _ => Seen::Other,
            },
        }
    }
}

/// Reads `bench:<seq>:<unix nanos>`.
fn stamp(message: &str) -> Option<(u64, u128)> {
    let mut parts = message.strip_prefix("bench:")?.split(':');
    let seq = parts.next()?.parse().ok()?;
    let nanos = parts.next()?.parse().ok()?;
    Some((seq, nanos))
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// How one stream went.
#[derive(Debug, Default)]
struct Outcome {
    /// When the stream was opened, from the start of the run.
    opened_at: Duration,
    /// Response head, first event of any kind and first token, each from the request.
    head: Option<Duration>,
    first_event: Option<Duration>,
    first_token: Option<Duration>,
    /// The longest gap between two tokens, and the number of the token that ended it.
    longest_gap: (Duration, usize),
    gaps: Samples,
    delivery: Samples,
    tokens: usize,
    last_seq: Option<u64>,
    seq_broken: bool,
    text_hash: u64,
    ended: bool,
    failure: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    streams: usize,
    expected_tokens_per_stream: usize,
    streams_complete: usize,
    streams_failed: usize,
    failures: BTreeMap<String, usize>,
    tokens_received: usize,
    frames_lost: usize,
    streams_out_of_order: usize,
    wall_secs: f64,
    time_to_first_token: Summary,
    gap_between_tokens: Summary,
    /// `progress` dialect only: publish (by the harness) to receipt here.
    publish_to_browser: Summary,
}

fn main() {
    sluice_loadgen::tool::run("sse-load", run(Args::parse()));
}

async fn run(args: Args) -> Result<Report, String> {
    let spec = RequestSpec::from_args(
        &args.method,
        args.url.as_deref(),
        args.urls_file.as_deref(),
        &args.headers,
        args.tokens_file.as_deref(),
        args.body.clone(),
    )?;
    let requests = Rc::new(PreparedRequests::new(&spec)?);
    let started = Rc::new(Cell::new(0));
    let idle = Duration::from_secs(args.idle_timeout_secs);
    let begin = Instant::now();
    let step = Duration::from_millis(args.ramp_ms).div_f64(args.streams.max(1) as f64);
    let timeline = args
        .timeline
        .as_deref()
        .map(std::fs::File::create)
        .transpose()
        .map_err(|e| format!("--timeline: {e}"))?;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.streams {
        tokio::time::sleep_until(begin + step.mul_f64(i as f64)).await;
        let stream = Stream {
            requests: requests.clone(),
            index: i,
            dialect: args.dialect,
            idle,
            started: started.clone(),
            begin,
            total: args.streams,
            expect: args.expect_tokens,
        };
        tasks.spawn_local(stream.run());
    }
    let mut outcomes = Vec::with_capacity(args.streams);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.unwrap_or_else(|e| Outcome {
            failure: Some(format!("task_{e}")),
            ..Outcome::default()
        }));
    }
    if let Some(file) = timeline {
        write_timeline(std::io::BufWriter::new(file), &outcomes)
            .map_err(|e| format!("--timeline: {e}"))?;
    }
    Ok(summarise(&args, outcomes, begin.elapsed()))
}

/// One stream to open and time.
struct Stream {
    requests: Rc<PreparedRequests>,
    index: usize,
    dialect: Dialect,
    /// Longest silence before the stream counts as failed.
    idle: Duration,
    /// Streams that have received their first event, shared by all.
    started: Rc<Cell<usize>>,
    /// The start of the run.
    begin: Instant,
    total: usize,
    expect: usize,
}

impl Stream {
    async fn run(self) -> Outcome {
        let sent = Instant::now();
        let mut outcome = Outcome {
            opened_at: sent - self.begin,
            ..Outcome::default()
        };
        let sending = self.requests.send_on_new_connection(self.index);
        let response = match tokio::time::timeout(self.idle, sending).await {
            Ok(Ok(response)) => response,
            Ok(Err(kind)) => return failed(outcome, &kind),
            Err(_) => return failed(outcome, "timeout_headers"),
        };
        if !response.status().is_success() {
            let kind = format!("status_{}", response.status().as_u16());
            return failed(outcome, &kind);
        }
        outcome.head = Some(sent.elapsed());
        let mut body = response.into_body();
        let mut parser = FrameParser::default();
        let mut hasher = DefaultHasher::new();
        let mut last_token: Option<Instant> = None;
        let mut opened = false;
        // One timer for the idle timeout, moved only when it fires (to `idle` after the last
        // chunk), not re-armed per chunk.
        let mut last_chunk = sent;
        let mut deadline = std::pin::pin!(tokio::time::sleep(self.idle));
        while !outcome.ended && outcome.failure.is_none() {
            let frame = tokio::select! {
                biased;
                frame = body.frame() => frame,
                () = &mut deadline => {
                    if last_chunk + self.idle <= Instant::now() {
                        return failed(outcome, "idle_timeout");
                    }
                    deadline.as_mut().reset(last_chunk + self.idle);
                    continue;
                }
            };
            let chunk = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => chunk,
                    Err(_) => continue, // trailers
                },
                Some(Err(_)) => return failed(outcome, "body_error"),
                None => return failed(outcome, "closed_before_end"),
            };
            let now = Instant::now();
            last_chunk = now;
            parser.push(&chunk, |frame| {
                if !opened {
                    opened = true;
                    outcome.first_event = Some(now - sent);
                    self.started.set(self.started.get() + 1);
                    if self.started.get() == self.total {
                        eprintln!("all-streams-open");
                    }
                }
                let content = match self.dialect.read(frame) {
                    Seen::Token(content) => content,
                    Seen::Stamped {
                        seq,
                        published_nanos,
                    } => {
                        let micros = unix_nanos().saturating_sub(published_nanos) / 1000;
                        let micros = u64::try_from(micros).unwrap_or(u64::MAX);
                        outcome.delivery.record(Duration::from_micros(micros));
                        if outcome.last_seq.is_some_and(|last| seq != last + 1) {
                            outcome.seq_broken = true;
                        }
                        outcome.last_seq = Some(seq);
                        Cow::Borrowed("")
                    }
                    Seen::End => {
                        outcome.ended = true;
                        return;
                    }
                    Seen::Failure(kind) => {
                        outcome.failure = Some(kind);
                        return;
                    }
                    Seen::Other => return,
                };
                match last_token {
                    None => outcome.first_token = Some(now - sent),
                    Some(last) => {
                        outcome.gaps.record(now - last);
                        if now - last > outcome.longest_gap.0 {
                            outcome.longest_gap = (now - last, outcome.tokens);
                        }
                    }
                }
                last_token = Some(now);
                outcome.tokens += 1;
                content.hash(&mut hasher);
                if matches!(self.dialect, Dialect::Progress) && outcome.tokens == self.expect {
                    outcome.ended = true;
                }
            });
        }
        outcome.text_hash = hasher.finish();
        outcome
    }
}

/// `--timeline`: one line per stream, times in milliseconds, in the order streams ended.
fn write_timeline(mut out: impl std::io::Write, outcomes: &[Outcome]) -> std::io::Result<()> {
    let ms =
        |d: Option<Duration>| d.map_or(String::new(), |d| format!("{:.3}", d.as_secs_f64() * 1e3));
    writeln!(
        out,
        "opened_at,head,first_event,first_token,longest_gap,longest_gap_token,tokens"
    )?;
    for o in outcomes {
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            ms(Some(o.opened_at)),
            ms(o.head),
            ms(o.first_event),
            ms(o.first_token),
            ms(Some(o.longest_gap.0)),
            o.longest_gap.1,
            o.tokens
        )?;
    }
    out.flush()
}

fn failed(mut outcome: Outcome, kind: &str) -> Outcome {
    outcome.failure = Some(kind.to_owned());
    outcome
}

fn summarise(args: &Args, outcomes: Vec<Outcome>, wall: Duration) -> Report {
    // The answer most complete streams received is the reference for "in order".
    let mut hashes: HashMap<u64, usize> = HashMap::new();
    for outcome in outcomes.iter().filter(|o| o.tokens == args.expect_tokens) {
        *hashes.entry(outcome.text_hash).or_default() += 1;
    }
    let reference = hashes
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(hash, _)| hash);

    let mut first_tokens = Samples::default();
    let mut gaps = Samples::default();
    let mut delivery = Samples::default();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let (mut complete, mut tokens, mut lost, mut out_of_order) = (0, 0, 0, 0);
    for outcome in outcomes {
        tokens += outcome.tokens;
        lost += args.expect_tokens.saturating_sub(outcome.tokens);
        if outcome.tokens > args.expect_tokens
            || (outcome.tokens == args.expect_tokens && Some(outcome.text_hash) != reference)
            || outcome.seq_broken
        {
            out_of_order += 1;
        }
        if let Some(first) = outcome.first_token {
            first_tokens.record(first);
        }
        gaps.absorb(outcome.gaps);
        delivery.absorb(outcome.delivery);
        match outcome.failure {
            Some(kind) => *failures.entry(kind).or_default() += 1,
            None if outcome.ended && outcome.tokens == args.expect_tokens => complete += 1,
            None => *failures.entry("incomplete".into()).or_default() += 1,
        }
    }
    Report {
        streams: args.streams,
        expected_tokens_per_stream: args.expect_tokens,
        streams_complete: complete,
        streams_failed: args.streams - complete,
        failures,
        tokens_received: tokens,
        frames_lost: lost,
        streams_out_of_order: out_of_order,
        wall_secs: wall.as_secs_f64(),
        time_to_first_token: first_tokens.summary(),
        gap_between_tokens: gaps.summary(),
        publish_to_browser: delivery.summary(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_timeline_has_a_line_per_stream_and_leaves_unreached_times_empty() {
        let ms = Duration::from_millis;
        let served = Outcome {
            opened_at: ms(5),
            head: Some(ms(1)),
            first_event: Some(ms(21)),
            first_token: Some(ms(22)),
            longest_gap: (ms(40), 7),
            tokens: 200,
            ..Outcome::default()
        };
        let refused = Outcome {
            opened_at: ms(6),
            failure: Some("status_503".into()),
            ..Outcome::default()
        };
        let mut out = Vec::new();
        write_timeline(&mut out, &[served, refused]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "opened_at,head,first_event,first_token,longest_gap,longest_gap_token,tokens\n\
             5.000,1.000,21.000,22.000,40.000,7,200\n\
             6.000,,,,0.000,0,0\n"
        );
    }
}
