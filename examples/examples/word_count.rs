//! Word count: the "hello world" of stream processing.
//!
//! Sentences arrive on the topic `sentences` (key: a line id, value: the text). The
//! topology splits each sentence into words (a stateless step), groups the words by
//! themselves (which re-keys the stream, so the framework adds a repartition topic), counts
//! each word in a state store, and writes every new count to the topic `word-counts`.
//!
//! It runs in the `TopologyTestDriver`: no broker, fully deterministic.
//!
//! Run it with `cargo run -p streams-examples --example word_count`.

use std::collections::BTreeMap;

use streams_core::prelude::*;

/// The input topic: one sentence per record.
const SENTENCES: &str = "sentences";
/// The output topic: every updated count of a word.
const COUNTS: &str = "word-counts";

/// The example's input, in the order it is written.
const INPUT: [&str; 4] = [
    "the quick brown fox",
    "the lazy dog",
    "The fox jumps over the dog",
    "a dog is a dog",
];

/// Builds the topology: sentences -> words -> counts per word.
fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        // Key: line id; value: the sentence.
        .stream::<String, String>(SENTENCES)
        // Stateless: one record per word (the key, the line id, stays).
        .flat_map_values(|sentence: String| {
            sentence
                .split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        // Re-key by the word itself: the same word of any line goes to the same task.
        .group_by(|_line, word| word.clone())
        // Stateful: a count per word, kept in a store named "counts".
        .count_with(Materialized::as_("counts"))
        // A table's changes as a stream (`Option`: `None` would be a deletion).
        .to_stream()
        .to(COUNTS);
    builder.build()
}

/// Runs the topology over `sentences` and returns the latest count of each word.
fn word_counts(sentences: &[&str]) -> Result<BTreeMap<String, i64>, StreamsError> {
    // Four input partitions, as a real topic would have: four tasks per sub-topology.
    let driver = TopologyTestDriver::builder(topology()?, StreamsConfig::new("word-count"))
        .partitions(SENTENCES, 4)
        .build()?;
    let input = driver.input_topic::<String, String>(SENTENCES);
    let output = driver.output_topic::<String, Option<i64>>(COUNTS);
    let mut latest = BTreeMap::new();
    for (i, sentence) in sentences.iter().enumerate() {
        // The driver processes the record completely (through the repartition topic)
        // before `pipe_input` returns.
        input.pipe_input(format!("line-{i}"), sentence.to_string())?;
        // The updates it caused. The record cache merges updates of one key made between
        // two commits: "the" twice in a sentence gives one update, +2.
        let updates = output.read_key_values_to_list()?;
        let shown: Vec<String> = updates
            .iter()
            .map(|(word, count)| format!("{word}={}", count.unwrap_or(0)))
            .collect();
        println!("  {sentence:<28} -> {}", shown.join(" "));
        // The last update of a word is its count.
        for (word, count) in updates {
            if let Some(count) = count {
                latest.insert(word, count);
            }
        }
    }
    Ok(latest)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("Each sentence and the updates it wrote to `{COUNTS}`:");
    let counts = word_counts(&INPUT)?;
    println!("Final counts:");
    for (word, count) in &counts {
        println!("  {word:<6} {count}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn counts_match_a_plain_count_of_the_words() {
        // After each prefix of the input, the same computation with a plain map.
        for n in 1..=super::INPUT.len() {
            let mut expected: BTreeMap<String, i64> = BTreeMap::new();
            for sentence in &super::INPUT[..n] {
                for word in sentence.split_whitespace() {
                    *expected.entry(word.to_lowercase()).or_default() += 1;
                }
            }
            assert_eq!(super::word_counts(&super::INPUT[..n]).unwrap(), expected);
        }
    }
}
