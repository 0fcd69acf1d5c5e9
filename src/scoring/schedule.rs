//! The scoring worker's policy, with no threads, model or I/O: which image is prepared next, when
//! a batch runs and with which images, what is stale, and when a request is finished. The worker's
//! execution loop asks it and does what it says; the tests here drive it with fake jobs.
//!
//! - Jobs are prepared most urgent first ([`Priority`]), at most a few device batches ahead.
//! - Prepared images wait in two lanes: full passes (pixels) and text-only passes (cached image
//!   tokens, in batches [`CACHED_BATCH_FACTOR`] times larger since each costs about a tenth).
//! - A batch takes the most urgent prepared images first. A lane runs when it can fill a batch,
//!   when nothing more is coming, or part-full when it holds the most urgent work and nothing as
//!   urgent is still being prepared; no batch starts while more urgent images than every prepared
//!   one are still being prepared (they would miss it).
//! - A superseding request makes the `Visible`/`View` work of older tickets stale; stale work is
//!   dropped where it is met (queued, landing, about to run), never drained ahead of time.

use std::collections::{HashMap, VecDeque};

use super::protocol::{PerPriority, Priority, Ticket};

/// Text-only batches are this many times the device batch: each image costs about a tenth of a
/// full pass, so a larger batch keeps the GEMMs efficient at the same latency.
pub const CACHED_BATCH_FACTOR: usize = 2;

/// Images prepared ahead of the model, in device batches.
pub const LOOKAHEAD_BATCHES: usize = 4;

/// One image of a request, with what the executor needs to prepare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job<I> {
    /// The request it belongs to.
    pub ticket: Ticket,
    /// How urgent.
    pub priority: Priority,
    /// What to prepare.
    pub input: I,
}

/// Which ready queue a batch is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Text part only, on cached image tokens.
    Cached,
    /// The whole model, on pixels.
    Pixels,
}

/// A request whose every image was scored, failed or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finished {
    /// The request.
    pub ticket: Ticket,
    /// Images scored.
    pub scored: usize,
    /// Images failed.
    pub failed: usize,
    /// Images dropped as stale.
    pub dropped: usize,
}

/// Counts per ticket, for [`Finished`].
#[derive(Debug, Default)]
struct TicketCounts {
    remaining: usize,
    scored: usize,
    failed: usize,
    dropped: usize,
}

/// The queues and counters; `I` is a job's input, `P` and `C` the payloads of prepared images
/// (pixels, cached tokens).
#[derive(Debug)]
pub(crate) struct Scheduler<I, P, C> {
    queues: PerPriority<VecDeque<Job<I>>>,
    in_flight: PerPriority<usize>,
    pixels: VecDeque<(Job<I>, P)>,
    cached: VecDeque<(Job<I>, C)>,
    tickets: HashMap<Ticket, TicketCounts>,
    finished: Vec<Finished>,
    stale_before: Ticket,
    paused: bool,
    batch: usize,
    done: usize,
    total: usize,
}

impl<I, P, C> Scheduler<I, P, C> {
    /// An empty scheduler for a model that runs `batch` images per pass.
    pub fn new(batch: usize) -> Self {
        Self {
            queues: PerPriority::default(),
            in_flight: PerPriority::default(),
            pixels: VecDeque::new(),
            cached: VecDeque::new(),
            tickets: HashMap::new(),
            finished: Vec::new(),
            stale_before: 0,
            paused: false,
            batch: batch.max(1),
            done: 0,
            total: 0,
        }
    }

    /// A new model's batch size.
    pub fn set_batch(&mut self, batch: usize) {
        self.batch = batch.max(1);
    }

    /// Images in a full pass.
    pub fn pixel_batch(&self) -> usize {
        self.batch
    }

    /// Images in a text-only pass.
    pub fn cached_batch(&self) -> usize {
        CACHED_BATCH_FACTOR * self.batch
    }

    /// Makes user-facing work of tickets before `ticket` stale (never undone).
    pub fn supersede_before(&mut self, ticket: Ticket) {
        self.stale_before = self.stale_before.max(ticket);
    }

    /// Starts no new preparation or batch until [`Scheduler::resume`].
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Undoes [`Scheduler::pause`].
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn is_stale(&self, job: &Job<I>) -> bool {
        job.priority.can_go_stale() && job.ticket < self.stale_before
    }

    /// Queues a request's images.
    pub fn accept(&mut self, ticket: Ticket, priority: Priority, inputs: impl IntoIterator<Item = I>) {
        let queue = &mut self.queues[priority];
        let before = queue.len();
        queue.extend(inputs.into_iter().map(|input| Job { ticket, priority, input }));
        let count = queue.len() - before;
        self.tickets.entry(ticket).or_default().remaining += count;
        self.total += count;
        self.finish_if_done(ticket);
    }

    /// The next job to prepare, most urgent first, while fewer than the lookahead are in flight or
    /// prepared; stale jobs met on the way are dropped.
    pub fn next_to_prepare(&mut self) -> Option<Job<I>> {
        if self.paused {
            return None;
        }
        while self.in_flight_count() + self.ready_len() < LOOKAHEAD_BATCHES * self.batch {
            let job = self.queues.iter_mut().find_map(VecDeque::pop_front)?;
            if self.is_stale(&job) {
                self.drop_stale(job.ticket);
                continue;
            }
            self.in_flight[job.priority] += 1;
            return Some(job);
        }
        None
    }

    /// A job's preparation finished. When it was prepared for an older model (`current` false) it
    /// goes back to the front of its queue; a stale job is dropped; otherwise it is returned for
    /// the executor to file ([`Scheduler::push_pixels`], [`Scheduler::push_cached`], or resolve).
    pub fn landed(&mut self, job: Job<I>, current: bool) -> Option<Job<I>> {
        let flying = &mut self.in_flight[job.priority];
        *flying = flying.saturating_sub(1);
        if !current {
            self.queues[job.priority].push_front(job);
            None
        } else if self.is_stale(&job) {
            self.drop_stale(job.ticket);
            None
        } else {
            Some(job)
        }
    }

    /// A prepared image that needs the whole model.
    pub fn push_pixels(&mut self, job: Job<I>, payload: P) {
        self.pixels.push_back((job, payload));
    }

    /// A prepared image whose image tokens are cached.
    pub fn push_cached(&mut self, job: Job<I>, payload: C) {
        self.cached.push_back((job, payload));
    }

    /// An image of `ticket` was scored.
    pub fn scored(&mut self, ticket: Ticket) {
        self.done += 1;
        self.count(ticket, |c| &mut c.scored);
    }

    /// An image of `ticket` failed.
    pub fn failed(&mut self, ticket: Ticket) {
        self.done += 1;
        self.count(ticket, |c| &mut c.failed);
    }

    fn drop_stale(&mut self, ticket: Ticket) {
        self.total = self.total.saturating_sub(1);
        self.count(ticket, |c| &mut c.dropped);
    }

    /// One image of `ticket` is settled (the counter `which` picks says how); finishes the ticket
    /// with its last image.
    fn count(&mut self, ticket: Ticket, which: fn(&mut TicketCounts) -> &mut usize) {
        if let Some(c) = self.tickets.get_mut(&ticket) {
            *which(c) += 1;
            c.remaining = c.remaining.saturating_sub(1);
        }
        self.finish_if_done(ticket);
    }

    fn finish_if_done(&mut self, ticket: Ticket) {
        if self.tickets.get(&ticket).is_some_and(|c| c.remaining == 0)
            && let Some(c) = self.tickets.remove(&ticket)
        {
            self.finished.push(Finished { ticket, scored: c.scored, failed: c.failed, dropped: c.dropped });
        }
    }

    /// Requests finished since the last call, in order.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// Images in preparation.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.iter().sum()
    }

    fn ready_len(&self) -> usize {
        self.pixels.len() + self.cached.len()
    }

    /// The most urgent priority still being prepared.
    fn most_urgent_in_flight(&self) -> Option<Priority> {
        Priority::ALL.into_iter().find(|&p| self.in_flight[p] > 0)
    }

    /// Whether a batch now would take less urgent prepared images while more urgent ones, not
    /// enough yet to fill it, are still being prepared.
    fn urgent_in_flight(&self) -> bool {
        let Some(flying) = self.most_urgent_in_flight() else { return false };
        let ready = self.pixels.iter().map(|(j, _)| j.priority).chain(self.cached.iter().map(|(j, _)| j.priority));
        let (mut as_urgent, mut less_urgent) = (0, 0);
        for p in ready {
            if p <= flying {
                as_urgent += 1;
            } else {
                less_urgent += 1;
            }
        }
        less_urgent > 0 && as_urgent < self.batch
    }

    /// Whether the executor should wait a little for preparations to land before planning: some
    /// are in flight and no batch can be formed yet, or more urgent ones are coming.
    pub fn should_wait_for_prepared(&self) -> bool {
        let short = self.pixels.len() < self.pixel_batch() && self.cached.len() < self.cached_batch();
        self.in_flight_count() > 0 && !self.paused && (short || self.urgent_in_flight())
    }

    /// Whether enough is prepared to stop collecting and run a batch.
    pub fn has_full_batch(&self) -> bool {
        !self.urgent_in_flight()
            && (self.pixels.len() >= self.pixel_batch() || self.cached.len() >= self.cached_batch())
    }

    /// The batches to run now, in order (empty: wait). The lane with the more urgent work goes
    /// first; cached tokens first on a tie (cheaper).
    pub fn plan(&self) -> Vec<Lane> {
        if self.paused || self.urgent_in_flight() {
            return Vec::new();
        }
        let more_coming = self.in_flight_count() > 0 || self.queues.iter().any(|q| !q.is_empty());
        let best = |lane: &mut dyn Iterator<Item = Priority>| lane.min();
        let best_cached = best(&mut self.cached.iter().map(|(j, _)| j.priority));
        let best_pixels = best(&mut self.pixels.iter().map(|(j, _)| j.priority));
        let flying = self.most_urgent_in_flight();
        // `None` (empty, nothing flying) sorts after every priority.
        let rank = |p: Option<Priority>| p.map_or(Priority::ALL.len(), |p| p as usize);
        // A lane leads when its best work is at least as urgent as the other lane's and more
        // urgent than anything still being prepared: no fuller batch of it is coming.
        let leads =
            |mine: Option<Priority>, other: Option<Priority>| rank(mine) <= rank(other) && rank(mine) < rank(flying);
        let run_cached = !self.cached.is_empty()
            && (self.cached.len() >= self.cached_batch() || !more_coming || leads(best_cached, best_pixels));
        let run_pixels = !self.pixels.is_empty()
            && (self.pixels.len() >= self.pixel_batch() || !more_coming || leads(best_pixels, best_cached));
        let pixels_first = rank(best_pixels) < rank(best_cached);
        let mut lanes = Vec::with_capacity(2);
        if run_pixels && pixels_first {
            lanes.push(Lane::Pixels);
        }
        if run_cached {
            lanes.push(Lane::Cached);
        }
        if run_pixels && !pixels_first {
            lanes.push(Lane::Pixels);
        }
        lanes
    }

    /// Up to a batch of fresh prepared images needing the whole model, most urgent first.
    pub fn take_pixels(&mut self) -> Vec<(Job<I>, P)> {
        let n = self.pixel_batch();
        let mut lane = std::mem::take(&mut self.pixels);
        let batch = self.take_fresh(&mut lane, n);
        self.pixels = lane;
        batch
    }

    /// Up to a batch of fresh prepared images with cached tokens, most urgent first.
    pub fn take_cached(&mut self) -> Vec<(Job<I>, C)> {
        let n = self.cached_batch();
        let mut lane = std::mem::take(&mut self.cached);
        let batch = self.take_fresh(&mut lane, n);
        self.cached = lane;
        batch
    }

    fn take_fresh<T>(&mut self, lane: &mut VecDeque<(Job<I>, T)>, n: usize) -> Vec<(Job<I>, T)> {
        // Stable: same-priority images keep their order.
        lane.make_contiguous().sort_by_key(|(j, _)| j.priority);
        let mut out = Vec::with_capacity(n.min(lane.len()));
        while out.len() < n {
            let Some((job, payload)) = lane.pop_front() else { break };
            if self.is_stale(&job) {
                self.drop_stale(job.ticket);
                continue;
            }
            out.push((job, payload));
        }
        out
    }

    /// Every queued and prepared job, removed (to fail them when no model is loaded). Jobs in
    /// flight stay counted until they land.
    pub fn drain_waiting(&mut self) -> Vec<Job<I>> {
        let mut jobs: Vec<Job<I>> = self.queues.iter_mut().flat_map(|q| q.drain(..)).collect();
        jobs.extend(self.pixels.drain(..).map(|(j, _)| j));
        jobs.extend(self.cached.drain(..).map(|(j, _)| j));
        jobs
    }

    /// After a model change: prepared work goes back to the front of its queue, in order (stored
    /// scores and cached tokens belonged to the old model).
    pub fn requeue_prepared(&mut self) {
        let jobs: Vec<Job<I>> =
            self.pixels.drain(..).map(|(j, _)| j).chain(self.cached.drain(..).map(|(j, _)| j)).collect();
        for job in jobs.into_iter().rev() {
            self.queues[job.priority].push_front(job);
        }
    }

    /// Whether nothing is queued, in flight or prepared.
    pub fn is_idle(&self) -> bool {
        self.in_flight_count() == 0 && self.ready_len() == 0 && self.queues.iter().all(VecDeque::is_empty)
    }

    /// Images finished and accepted since the scheduler was last idle.
    pub fn progress(&self) -> (usize, usize) {
        (self.done, self.total)
    }

    /// Starts the progress counts afresh once idle.
    pub fn reset_progress_if_idle(&mut self) {
        if self.is_idle() {
            self.done = 0;
            self.total = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fake = Scheduler<&'static str, (), ()>;

    /// Prepares everything the lookahead allows; returns the job names.
    fn prepare_all(s: &mut Fake) -> Vec<Job<&'static str>> {
        std::iter::from_fn(|| s.next_to_prepare()).collect()
    }

    /// Lands jobs as full-model work.
    fn land_pixels(s: &mut Fake, jobs: Vec<Job<&'static str>>) {
        for job in jobs {
            if let Some(job) = s.landed(job, true) {
                s.push_pixels(job, ());
            }
        }
    }

    fn names<T>(batch: &[(Job<&'static str>, T)]) -> Vec<&'static str> {
        batch.iter().map(|(j, _)| j.input).collect()
    }

    #[test]
    fn the_most_urgent_work_is_prepared_first_within_the_lookahead() {
        let mut s = Fake::new(1);
        s.accept(1, Priority::Library, ["l1", "l2", "l3", "l4", "l5"]);
        s.accept(2, Priority::Visible, ["v1"]);
        s.accept(3, Priority::View, ["w1"]);
        let jobs = prepare_all(&mut s);
        let order: Vec<_> = jobs.iter().map(|j| j.input).collect();
        assert_eq!(order, ["v1", "w1", "l1", "l2"], "lookahead is {LOOKAHEAD_BATCHES} batches of 1");
        assert!(s.next_to_prepare().is_none());
        land_pixels(&mut s, jobs);
        // Nothing prepared leaves room: the lookahead counts prepared images too.
        assert!(s.next_to_prepare().is_none());
        assert_eq!(names(&s.take_pixels()), ["v1"]);
        assert_eq!(s.next_to_prepare().map(|j| j.input), Some("l3"));
    }

    #[test]
    fn superseded_user_work_is_dropped_where_met_and_library_work_never() {
        let mut s = Fake::new(2);
        s.accept(1, Priority::View, ["a", "b", "c"]);
        s.accept(2, Priority::Library, ["lib"]);
        let first = s.next_to_prepare().unwrap();
        s.supersede_before(3);
        s.accept(3, Priority::Visible, ["new"]);
        let rest = prepare_all(&mut s);
        assert_eq!(rest.iter().map(|j| j.input).collect::<Vec<_>>(), ["new", "lib"]);
        // The job that was in flight when superseded is dropped when it lands.
        assert!(s.landed(first, true).is_none());
        let finished = s.take_finished();
        assert_eq!(finished, [Finished { ticket: 1, scored: 0, failed: 0, dropped: 3 }]);
        assert_eq!(s.progress(), (0, 2), "dropped work leaves the total");
    }

    #[test]
    fn stale_prepared_images_are_dropped_when_a_batch_is_taken() {
        let mut s = Fake::new(4);
        s.accept(1, Priority::View, ["a", "b"]);
        s.accept(2, Priority::Library, ["l"]);
        let jobs = prepare_all(&mut s);
        land_pixels(&mut s, jobs);
        s.supersede_before(5);
        assert_eq!(names(&s.take_pixels()), ["l"]);
        assert_eq!(s.take_finished(), [Finished { ticket: 1, scored: 0, failed: 0, dropped: 2 }]);
    }

    #[test]
    fn a_batch_takes_the_most_urgent_prepared_images_first() {
        let mut s = Fake::new(2);
        s.accept(1, Priority::Library, ["l1", "l2"]);
        s.accept(2, Priority::Visible, ["v1", "v2"]);
        let mut jobs = prepare_all(&mut s);
        // Landing order is up to the decode pool: library first here.
        jobs.sort_by_key(|j| std::cmp::Reverse(j.priority));
        land_pixels(&mut s, jobs);
        assert_eq!(s.plan(), [Lane::Pixels]);
        assert_eq!(names(&s.take_pixels()), ["v1", "v2"]);
        assert_eq!(names(&s.take_pixels()), ["l1", "l2"]);
    }

    #[test]
    fn a_part_full_batch_waits_while_more_of_it_is_coming_and_runs_when_nothing_is() {
        let mut s = Fake::new(4);
        s.accept(1, Priority::Library, ["a", "b", "c"]);
        let mut jobs = prepare_all(&mut s);
        let last = jobs.pop().unwrap();
        land_pixels(&mut s, jobs);
        // Two prepared, one of the same priority still in flight: wait for it.
        assert!(s.plan().is_empty());
        assert!(s.should_wait_for_prepared());
        land_pixels(&mut s, vec![last]);
        // Nothing more is coming: the part-full batch runs.
        assert!(!s.should_wait_for_prepared());
        assert_eq!(s.plan(), [Lane::Pixels]);
        assert_eq!(names(&s.take_pixels()), ["a", "b", "c"]);
        assert!(s.is_idle());
    }

    #[test]
    fn no_batch_starts_while_more_urgent_images_are_still_being_prepared() {
        let mut s = Fake::new(2);
        s.accept(1, Priority::Library, ["l1", "l2", "l3"]);
        let library = prepare_all(&mut s);
        land_pixels(&mut s, library);
        s.accept(2, Priority::Visible, ["v1"]);
        // The lookahead (8) has room: the visible image goes into preparation.
        let visible = s.next_to_prepare().unwrap();
        assert_eq!(visible.input, "v1");
        // A full library batch is ready, but it would run ahead of the visible image.
        assert!(s.plan().is_empty());
        assert!(!s.has_full_batch());
        land_pixels(&mut s, vec![visible]);
        assert_eq!(s.plan(), [Lane::Pixels]);
        assert_eq!(names(&s.take_pixels()), ["v1", "l1"]);
    }

    #[test]
    fn the_lane_with_the_most_urgent_work_runs_first_and_leads_part_full() {
        let mut s = Fake::new(4);
        s.accept(1, Priority::Library, ["l1", "l2"]);
        s.accept(2, Priority::Visible, ["v1"]);
        s.accept(3, Priority::Library, ["later"]);
        let mut jobs = prepare_all(&mut s);
        let still_flying = jobs.pop().unwrap();
        assert_eq!(still_flying.input, "later");
        for job in jobs {
            let job = s.landed(job, true).unwrap();
            if job.priority == Priority::Visible {
                s.push_pixels(job, ());
            } else {
                s.push_cached(job, ());
            }
        }
        // The visible image leads (only library work is in flight): its part-full pass runs
        // first; the cached lane, short and with library work coming, waits.
        assert_eq!(s.plan(), [Lane::Pixels]);
        assert_eq!(names(&s.take_pixels()), ["v1"]);
        assert!(s.plan().is_empty());
        if let Some(job) = s.landed(still_flying, true) {
            s.push_cached(job, ());
        }
        assert_eq!(s.plan(), [Lane::Cached]);
        assert_eq!(names(&s.take_cached()), ["l1", "l2", "later"]);
    }

    #[test]
    fn cached_batches_are_larger_and_go_first_on_a_tie() {
        let mut s = Fake::new(2);
        s.accept(1, Priority::Library, ["c1", "c2", "c3", "c4", "c5", "p1", "p2"]);
        for job in prepare_all(&mut s) {
            let job = s.landed(job, true).unwrap();
            if job.input.starts_with('c') {
                s.push_cached(job, ());
            } else {
                s.push_pixels(job, ());
            }
        }
        assert_eq!(s.plan(), [Lane::Cached, Lane::Pixels]);
        assert_eq!(names(&s.take_cached()), ["c1", "c2", "c3", "c4"]);
        assert_eq!(names(&s.take_pixels()), ["p1", "p2"]);
    }

    #[test]
    fn pausing_stops_preparation_and_batches() {
        let mut s = Fake::new(1);
        s.accept(1, Priority::Library, ["a", "b"]);
        let a = s.next_to_prepare().unwrap();
        land_pixels(&mut s, vec![a]);
        s.pause();
        assert!(s.next_to_prepare().is_none());
        assert!(s.plan().is_empty());
        s.resume();
        assert_eq!(s.plan(), [Lane::Pixels]);
    }

    #[test]
    fn requests_finish_with_their_counts_and_empty_ones_at_once() {
        let mut s = Fake::new(2);
        s.accept(7, Priority::Visible, std::iter::empty());
        assert_eq!(s.take_finished(), [Finished { ticket: 7, scored: 0, failed: 0, dropped: 0 }]);
        s.accept(8, Priority::Visible, ["a", "b"]);
        s.scored(8);
        assert!(s.take_finished().is_empty());
        s.failed(8);
        assert_eq!(s.take_finished(), [Finished { ticket: 8, scored: 1, failed: 1, dropped: 0 }]);
        assert_eq!(s.progress(), (2, 2));
    }

    #[test]
    fn a_model_change_requeues_prepared_work_in_order_and_re_prepares_landing_work() {
        let mut s = Fake::new(1);
        s.accept(1, Priority::View, ["a", "b", "c"]);
        let mut jobs = prepare_all(&mut s);
        let flying = jobs.pop().unwrap();
        land_pixels(&mut s, jobs);
        s.requeue_prepared();
        // Prepared for the old model: back to its queue.
        assert!(s.landed(flying, false).is_none());
        let again: Vec<_> = prepare_all(&mut s).into_iter().map(|j| j.input).collect();
        assert_eq!(again, ["c", "a", "b"]);
    }

    #[test]
    fn waiting_work_is_drained_to_fail_without_a_model() {
        let mut s = Fake::new(1);
        s.accept(1, Priority::Library, ["a", "b", "c"]);
        let a = s.next_to_prepare().unwrap();
        land_pixels(&mut s, vec![a]);
        let waiting: Vec<_> = s.drain_waiting().into_iter().map(|j| j.input).collect();
        assert_eq!(waiting, ["b", "c", "a"]);
        for _ in 0..3 {
            s.failed(1);
        }
        assert_eq!(s.take_finished(), [Finished { ticket: 1, scored: 0, failed: 3, dropped: 0 }]);
        assert!(s.is_idle());
        s.reset_progress_if_idle();
        assert_eq!(s.progress(), (0, 0));
    }
}
