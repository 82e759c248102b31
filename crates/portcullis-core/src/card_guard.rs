//! The card ID limit per card: a card ID has 1,000 or 10,000 values, so wrong card IDs are
//! counted on the card itself, across every client address and every flow that checks one
//! (registration, linking a card, forgot password), and at the limit the card stops
//! accepting card IDs online until support clears it (or the account's support unlock
//! does). Per-address throttling (`throttle`) cannot see a guesser who moves between
//! addresses; this can.
//!
//! A card's guard as a pure state machine: the same transitions the store makes in one
//! atomic statement each (`store/src/card_guard.rs`). A check *claims* a try before it
//! compares (so parallel guesses never get more than `limit` tries evaluated), gives it
//! back when the card ID was right, and keeps it when it was wrong; the wrong try that
//! takes the last place pauses the card (a state change, in the unit of work that also
//! tells the holder and audits it).
//!
//! ```text
//!   (none) ──claim──► Open(start = now, tries = 1)
//!   Open(tries < limit) ──claim──► Open(tries + 1)
//!   Open(start ≤ now − window) ──claim──► Open(start = now, tries = 1)
//!   Open(tries = limit, window open) ──claim──► refused          (answered like a wrong card ID)
//!   Open(tries) ──release──► Open(tries − 1)                     (the card ID was right)
//!   Open(tries = limit) ──pause──► Paused                         (the holder is told)
//!   Paused ──claim──► refused, whatever the card ID and however long after
//!   Paused(unpause < limit) ──unpause claim──► Paused(unpause + 1)  (the holder's way back)
//!   Paused(unpause = limit) ──unpause claim──► refused             (support only)
//!   not paused ──unpause claim──► refused
//!   any ──clear (support, or code + right card ID)──► (none)
//! ```
//!
//! The holder's own way back (`service/card_unpause.rs`): a one-time code to the registry's
//! email or phone, then the right card ID. That card ID check claims an *unpause* try on the
//! paused card (its own count, so the guesses that paused the card do not use it up); a
//! wrong one keeps its try, and after `failures` wrong ones only support can clear the card.

/// How many wrong card IDs a card takes, and in what window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardGuardPolicy {
    /// Wrong card IDs allowed per card in the window before it is paused (default 5).
    pub failures: u32,
    /// The window (default 24 hours).
    pub window_secs: i64,
}

impl Default for CardGuardPolicy {
    fn default() -> Self {
        Self {
            failures: 5,
            window_secs: 24 * 3600,
        }
    }
}

/// What a claim answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardClaim {
    /// A try was taken; this is its number in the window (1 ..= limit).
    Granted(u32),
    /// The card is paused, or its window is full: no card ID is checked.
    Refused,
}

/// A wrong card ID on a granted try: does it pause the card?
pub fn pauses(try_number: u32, policy: CardGuardPolicy) -> bool {
    try_number >= policy.failures
}

/// What a flow does with a card ID check, given its claim and whether the card ID was right.
/// Registration, linking and recovery all decide through this one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The card ID was right and was checked: give the try back, go on.
    Accepted,
    /// The card ID was wrong: the try stays counted; `pause` when it was the last one.
    Wrong { pause: bool },
    /// Nothing was checked (paused or full): answer exactly as to a wrong card ID.
    Refused,
}

/// The one rule: a refused claim refuses whatever the card ID; otherwise the card ID decides.
pub fn verdict(claim: GuardClaim, right: bool, policy: CardGuardPolicy) -> Verdict {
    match claim {
        GuardClaim::Refused => Verdict::Refused,
        GuardClaim::Granted(_) if right => Verdict::Accepted,
        GuardClaim::Granted(n) => Verdict::Wrong {
            pause: pauses(n, policy),
        },
    }
}

/// One card's guard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CardGuard {
    /// `None` before the first claim (and after support cleared it).
    pub window_start: Option<i64>,
    pub tries: u32,
    pub paused: bool,
    /// Card IDs tried on the holder's way back while paused (see [`CardGuard::unpause_claim`]).
    pub unpause_tries: u32,
}

impl CardGuard {
    /// Claims a try at `now`.
    pub fn claim(&mut self, now: i64, policy: CardGuardPolicy) -> GuardClaim {
        if self.paused {
            return GuardClaim::Refused;
        }
        match self.window_start {
            Some(start) if start > now - policy.window_secs => {
                if self.tries < policy.failures {
                    self.tries += 1;
                    GuardClaim::Granted(self.tries)
                } else {
                    GuardClaim::Refused
                }
            }
            _ => {
                *self = CardGuard {
                    window_start: Some(now),
                    tries: 1,
                    paused: false,
                    unpause_tries: 0,
                };
                GuardClaim::Granted(1)
            }
        }
    }

    /// Gives a try back: the card ID was right.
    pub fn release(&mut self) {
        self.tries = self.tries.saturating_sub(1);
    }

    /// Pauses the card; `true` when it was not paused before (the holder is told once).
    pub fn pause(&mut self) -> bool {
        !std::mem::replace(&mut self.paused, true)
    }

    /// Claims a card ID try on the holder's way back: granted (its number) only while the
    /// card is paused and fewer than `policy.failures` were tried; never given back (a right
    /// card ID clears the card, and with it the count).
    pub fn unpause_claim(&mut self, policy: CardGuardPolicy) -> Option<u32> {
        if !self.paused || self.unpause_tries >= policy.failures {
            return None;
        }
        self.unpause_tries += 1;
        Some(self.unpause_tries)
    }

    /// Support cleared the card: it accepts card IDs again, with a fresh count. `true` when
    /// it was paused.
    pub fn clear(&mut self) -> bool {
        let was = self.paused;
        *self = CardGuard::default();
        was
    }
}

#[cfg(test)]
#[path = "card_guard/tests.rs"]
mod tests;
