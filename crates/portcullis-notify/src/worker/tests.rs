use super::*;

#[test]
fn backoff_doubles_from_five_seconds_to_an_hour() {
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let first = backoff_secs(1, 5, 3600, &mut rng);
        assert!((5..=6).contains(&first), "{first}");
        let third = backoff_secs(3, 5, 3600, &mut rng);
        assert!((20..=25).contains(&third), "{third}");
        assert_eq!(backoff_secs(20, 5, 3600, &mut rng), 3600);
        assert_eq!(backoff_secs(u32::MAX, 5, 3600, &mut rng), 3600);
    }
    // A row never claimed (0 attempts) waits like a first failure.
    assert!((5..=6).contains(&backoff_secs(0, 5, 3600, &mut rng)));
}
