//! Punctuation: a processor's scheduled callbacks on stream time or wall-clock time. A leaf
//! module, shared by the Processor API and the tasks that fire the punctuators; the public
//! names are in [`crate::processor`].

/// Which clock a punctuator follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// The task's stream time (largest record timestamp seen). Fires only as data arrives;
    /// aligned to multiples of the interval; a punctuator that fell behind fires once.
    StreamTime,
    /// The wall clock (the test driver's mocked clock). First fires one interval after
    /// scheduling.
    WallClockTime,
}

/// The id of a scheduled punctuator, to tell several apart and to cancel one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleId(pub(crate) u64);

/// A punctuator firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punctuation {
    /// Which schedule fired.
    pub id: ScheduleId,
    /// Its clock.
    pub kind: PunctuationType,
    /// The time it fired at (stream time or wall-clock time, in ms).
    pub timestamp: i64,
}
