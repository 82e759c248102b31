use proptest::prelude::*;

use super::*;

const POLICY: CardGuardPolicy = CardGuardPolicy {
    failures: 5,
    window_secs: 24 * 3600,
};

/// One check as a flow makes it: claim, decide, then give back or pause.
fn check(guard: &mut CardGuard, now: i64, right: bool) -> Verdict {
    let v = verdict(guard.claim(now, POLICY), right, POLICY);
    match v {
        Verdict::Accepted => guard.release(),
        Verdict::Wrong { pause: true } => {
            guard.pause();
        }
        Verdict::Wrong { pause: false } | Verdict::Refused => {}
    }
    v
}

#[test]
fn five_wrong_card_ids_pause_the_card_and_then_the_right_one_is_refused() {
    let mut g = CardGuard::default();
    for i in 1..=4 {
        assert_eq!(
            check(&mut g, 1000 + i, false),
            Verdict::Wrong { pause: false }
        );
    }
    assert_eq!(check(&mut g, 1005, false), Verdict::Wrong { pause: true });
    assert!(g.paused);
    assert_eq!(check(&mut g, 1006, true), Verdict::Refused);
    assert_eq!(check(&mut g, 1006, false), Verdict::Refused);
}

#[test]
fn a_pause_outlives_the_window() {
    let mut g = CardGuard::default();
    for i in 0..5 {
        check(&mut g, 1000 + i, false);
    }
    assert_eq!(
        check(&mut g, 1000 + 10 * POLICY.window_secs, true),
        Verdict::Refused
    );
}

#[test]
fn support_clears_a_paused_card() {
    let mut g = CardGuard::default();
    for i in 0..5 {
        check(&mut g, 1000 + i, false);
    }
    assert!(g.clear(), "it was paused");
    assert!(!g.clear(), "clearing twice changes nothing");
    assert_eq!(check(&mut g, 2000, true), Verdict::Accepted);
}

#[test]
fn a_right_card_id_gives_its_try_back_and_wrong_ones_expire_with_the_window() {
    let mut g = CardGuard::default();
    for i in 0..4 {
        check(&mut g, 1000 + i, false);
    }
    assert_eq!(check(&mut g, 1010, true), Verdict::Accepted);
    assert_eq!(g.tries, 4, "the right one took nothing");
    // The window closes: the four wrong ones no longer count.
    let later = 1000 + POLICY.window_secs;
    assert_eq!(check(&mut g, later, false), Verdict::Wrong { pause: false });
    assert_eq!(g.tries, 1);
}

#[test]
fn a_full_window_refuses_even_before_the_pause_is_written() {
    // Five tries claimed at once (none decided yet): the sixth is refused.
    let mut g = CardGuard::default();
    for i in 1..=5 {
        assert_eq!(g.claim(1000, POLICY), GuardClaim::Granted(i));
    }
    assert_eq!(g.claim(1000, POLICY), GuardClaim::Refused);
    assert!(!g.paused);
}

#[test]
fn the_default_limit_is_five_in_24_hours() {
    assert_eq!(CardGuardPolicy::default(), POLICY);
    assert!(!pauses(4, POLICY));
    assert!(pauses(5, POLICY));
}

/// The three flows that check a card ID; each decides through the same rule.
#[derive(Clone, Copy, Debug)]
enum Flow {
    Registration,
    Linking,
    Recovery,
}

#[derive(Clone, Debug)]
enum Op {
    /// Guesses arriving together: every claim is taken before any is decided (the worst
    /// interleaving for a read-then-write check), then decided in the order of their keys
    /// (any order: requests finish as they please).
    Guesses(Vec<(Flow, bool, u8)>),
    /// Time passes.
    Wait(i64),
    /// Support clears the card.
    Clear,
    /// The holder's way back with a right code: one card ID, right or wrong.
    WayBack(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let flow = prop_oneof![
        Just(Flow::Registration),
        Just(Flow::Linking),
        Just(Flow::Recovery)
    ];
    prop_oneof![
        4 => prop::collection::vec((flow, any::<bool>(), any::<u8>()), 1..13).prop_map(Op::Guesses),
        1 => (0i64..(2 * 24 * 3600)).prop_map(Op::Wait),
        1 => Just(Op::Clear),
        1 => any::<bool>().prop_map(Op::WayBack),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random interleavings of wrong and right card IDs across the three flows, time,
    /// support clears and the holder's way back: no window ever evaluates more wrong card
    /// IDs than the limit, nothing is evaluated while the card is paused (a right card ID
    /// included), once paused the card stays paused until support or a right card ID on the
    /// way back clears it, and the way back takes no more than the limit of card IDs.
    #[test]
    fn the_limit_holds_under_any_interleaving(ops in prop::collection::vec(op(), 1..40)) {
        let mut g = CardGuard::default();
        let mut now = 1_000_000i64;
        // The model: wrong card IDs evaluated per window, and whether paused.
        let mut wrong_in_window = 0u32;
        let mut window: Option<i64> = None;
        let mut paused = false;
        let mut way_back_tries = 0u32;
        for op in ops {
            match op {
                Op::WayBack(right) => {
                    let claim = g.unpause_claim(POLICY);
                    if !paused {
                        prop_assert_eq!(claim, None, "the way back of a card that is not paused");
                    }
                    if let Some(n) = claim {
                        way_back_tries += 1;
                        prop_assert_eq!(n, way_back_tries);
                        prop_assert!(n <= POLICY.failures);
                        if right {
                            prop_assert!(g.clear());
                            paused = false;
                            window = None;
                            wrong_in_window = 0;
                            way_back_tries = 0;
                        }
                    } else if paused {
                        prop_assert_eq!(way_back_tries, POLICY.failures, "refused below the limit");
                    }
                    prop_assert_eq!(g.paused, paused);
                }
                Op::Wait(dt) => now += dt,
                Op::Clear => {
                    g.clear();
                    paused = false;
                    window = None;
                    wrong_in_window = 0;
                    way_back_tries = 0;
                }
                Op::Guesses(guesses) => {
                    let mut claims = Vec::new();
                    for (flow, right, key) in guesses {
                        let claim = g.claim(now, POLICY);
                        if g.window_start != window {
                            window = g.window_start;
                            wrong_in_window = 0;
                        }
                        if paused {
                            prop_assert_eq!(claim, GuardClaim::Refused, "{:?} checked a paused card", flow);
                        }
                        claims.push((key, flow, right, claim));
                    }
                    claims.sort_by_key(|c| c.0);
                    for (_, flow, right, claim) in claims {
                        let v = verdict(claim, right, POLICY);
                        match v {
                            Verdict::Accepted => {
                                prop_assert!(right);
                                g.release();
                            }
                            Verdict::Wrong { pause } => {
                                prop_assert!(!right);
                                wrong_in_window += 1;
                                if pause {
                                    prop_assert!(g.pause(), "{:?} paused it twice", flow);
                                    paused = true;
                                }
                            }
                            Verdict::Refused => {}
                        }
                        prop_assert!(wrong_in_window <= POLICY.failures,
                            "{} wrong card IDs evaluated in one window", wrong_in_window);
                        prop_assert_eq!(g.paused, paused);
                    }
                }
            }
        }
    }
}

#[test]
fn the_way_back_takes_limited_card_ids_and_only_on_a_paused_card() {
    let mut g = CardGuard::default();
    assert_eq!(g.unpause_claim(POLICY), None, "not guessed at");
    check(&mut g, 1000, false);
    assert_eq!(g.unpause_claim(POLICY), None, "not paused");
    for i in 1..5 {
        check(&mut g, 1000 + i, false);
    }
    assert!(g.paused);
    for n in 1..=POLICY.failures {
        assert_eq!(g.unpause_claim(POLICY), Some(n));
    }
    assert_eq!(g.unpause_claim(POLICY), None, "support only now");
    assert!(g.clear());
    assert_eq!(g, CardGuard::default());
}
