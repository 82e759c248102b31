//! The `[cards]` section: what the card lifecycle from the registry does (issue 17,
//! docs/design/cards.md).

use anyhow::bail;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CardsConfig {
    /// An account whose every card is closed signs in read-only (its statements) for this
    /// many days after its last card closed; then the inactivity job deactivates it with
    /// notice.
    pub closed_read_only_days: i64,
}

impl Default for CardsConfig {
    fn default() -> Self {
        Self {
            closed_read_only_days: portcullis_core::inactivity::DEFAULT_CLOSED_READ_ONLY_SECS
                / 86_400,
        }
    }
}

impl CardsConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !(0..=3650).contains(&self.closed_read_only_days) {
            bail!("cards.closed_read_only_days must be 0 to 3650");
        }
        Ok(())
    }

    pub(super) fn closed_read_only_secs(&self) -> i64 {
        self.closed_read_only_days * 86_400
    }
}
