//! The short-lived steps of the flows (a registration between its two steps, a sign-in
//! waiting for its second factor, a recovery, a contact change, a passkey ceremony), and
//! what a one-time code is for. Each is stored by name, so the names are stable; the store
//! binds these names and never spells them itself.

/// What a step is: the store keeps one row per step, held by the hash of a random token,
/// and finds it only under its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Registration: the card was verified; the account details come next.
    Registration,
    /// Sign-in: the password was right; a second step is due.
    SignInMfa,
    /// The "This was not me" link of a new-device notice.
    NotMe,
    /// Forgot password: the User ID was given; the card ID or answers come next.
    RecoveryPassword,
    /// Forgot password: the identity was checked; the code comes next.
    RecoveryCode,
    /// Forgot password: the code was right; the new password comes next.
    RecoveryReset,
    /// Forgot User ID: a code went to the address given.
    RecoveryUserId,
    /// A change of email or phone waiting for the code sent to the new address.
    ContactChange,
    /// A passkey being added.
    PasskeyRegister,
    /// A passkey assertion for a sign-in's second step.
    PasskeyMfa,
    /// A sign-in with a passkey alone.
    PasskeySignIn,
    /// A paused card's way back: a code went to the registry's contact; the code and the
    /// card ID come next.
    CardUnpause,
}

impl StepKind {
    pub const ALL: [StepKind; 12] = [
        StepKind::Registration,
        StepKind::SignInMfa,
        StepKind::NotMe,
        StepKind::RecoveryPassword,
        StepKind::RecoveryCode,
        StepKind::RecoveryReset,
        StepKind::RecoveryUserId,
        StepKind::ContactChange,
        StepKind::PasskeyRegister,
        StepKind::PasskeyMfa,
        StepKind::PasskeySignIn,
        StepKind::CardUnpause,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::SignInMfa => "signin.mfa",
            Self::NotMe => "signin.not_me",
            Self::RecoveryPassword => "recovery.password",
            Self::RecoveryCode => "recovery.code",
            Self::RecoveryReset => "recovery.reset",
            Self::RecoveryUserId => "recovery.user_id",
            Self::ContactChange => "contact.change",
            Self::PasskeyRegister => "passkey.register",
            Self::PasskeyMfa => "passkey.mfa",
            Self::PasskeySignIn => "passkey.signin",
            Self::CardUnpause => "card.unpause",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a one-time code proves when it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodePurpose {
    /// The second step of a sign-in, by email or text.
    SignInMfa,
    /// Forgot password after the card ID: the code also unlocks a locked account.
    RecoveryByCard,
    /// Forgot password after the security answers.
    RecoveryByAnswers,
    /// Forgot User ID.
    RecoveryUserId,
    /// A new email address receives messages.
    ContactEmail,
    /// A new mobile number receives messages.
    ContactPhone,
}

impl CodePurpose {
    pub const ALL: [CodePurpose; 6] = [
        CodePurpose::SignInMfa,
        CodePurpose::RecoveryByCard,
        CodePurpose::RecoveryByAnswers,
        CodePurpose::RecoveryUserId,
        CodePurpose::ContactEmail,
        CodePurpose::ContactPhone,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignInMfa => "signin.mfa",
            Self::RecoveryByCard => "recovery.card",
            Self::RecoveryByAnswers => "recovery.answers",
            Self::RecoveryUserId => "recovery.user_id",
            Self::ContactEmail => "contact.email",
            Self::ContactPhone => "contact.phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct() {
        for kind in StepKind::ALL {
            assert_eq!(StepKind::parse(kind.as_str()), Some(kind));
        }
        for purpose in CodePurpose::ALL {
            assert_eq!(CodePurpose::parse(purpose.as_str()), Some(purpose));
        }
        let mut names: Vec<&str> = StepKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), StepKind::ALL.len());
        assert_eq!(StepKind::parse("nonsense"), None);
    }
}
