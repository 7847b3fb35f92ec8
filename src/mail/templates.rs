//! The text of the token mails. Subjects are the reference PDS's (clients and users may filter
//! on them); bodies are plain text in our own words. Every body names the service and says how
//! long the token lasts, so a user who did not ask for it knows it will lapse on its own.

use super::Mail;

/// What every mail needs to know about the sender.
#[derive(Debug, Clone)]
pub struct Branding {
    /// `PDS_SERVICE_NAME`.
    pub service_name: String,
}

const LIFETIME: &str = "15 minutes";

fn footer(b: &Branding) -> String {
    format!(
        "\n\nThe code works once and for {LIFETIME}. If you did not ask for it, you can ignore \
         this message; nothing changes without the code.\n\n-- {}\n",
        b.service_name
    )
}

/// `confirm_email`: proves the address belongs to the account holder.
pub fn confirm_email(b: &Branding, to: &str, token: &str, with_link: bool) -> Mail {
    let link = if with_link {
        format!(
            "\n\nOr open this link in the app: https://bsky.app/intent/verify-email?code={token}"
        )
    } else {
        String::new()
    };
    Mail {
        to: to.to_string(),
        subject: "Email Confirmation".into(),
        body: format!(
            "Someone asked to confirm this email address for an account on {}.\n\n\
             Confirmation code: {token}{link}{}",
            b.service_name,
            footer(b)
        ),
    }
}

/// `update_email`: sent to the current (confirmed) address before it may change.
pub fn update_email(b: &Branding, to: &str, token: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Email Update Requested".into(),
        body: format!(
            "A change of the email address of your {} account was requested.\n\n\
             Code to approve the change: {token}{}",
            b.service_name,
            footer(b)
        ),
    }
}

/// `reset_password`: names the handle, since one person may hold several accounts.
pub fn reset_password(b: &Branding, to: &str, handle: &str, token: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Password Reset Requested".into(),
        body: format!(
            "A password reset was requested for @{handle} on {}.\n\n\
             Reset code: {token}\n\n\
             Signing in with the new password ends every existing session.{}",
            b.service_name,
            footer(b)
        ),
    }
}

/// `delete_account`: the last step before the account and its data are gone for good.
pub fn delete_account(b: &Branding, to: &str, token: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Account Deletion Requested".into(),
        body: format!(
            "Deleting your account on {} was requested. With this code and your password the \
             account, its repository and its media are removed permanently.\n\n\
             Deletion code: {token}{}",
            b.service_name,
            footer(b)
        ),
    }
}

/// `plc_operation`: lets the account's identity (did:plc) be re-signed, e.g. to move to
/// another server.
pub fn plc_operation(b: &Branding, to: &str, token: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "PLC Update Operation Requested".into(),
        body: format!(
            "A change to your account's identity (its did:plc document) was requested on {}. \
             This is the step that moves an account to another server; give this code only to \
             the app you are migrating with.\n\n\
             Identity update code: {token}{}",
            b.service_name,
            footer(b)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mail_carries_its_token() {
        let b = Branding {
            service_name: "test PDS".into(),
        };
        let t = "ABCDE-23456";
        for mail in [
            confirm_email(&b, "a@example.com", t, true),
            confirm_email(&b, "a@example.com", t, false),
            update_email(&b, "a@example.com", t),
            reset_password(&b, "a@example.com", "alice.test", t),
            delete_account(&b, "a@example.com", t),
            plc_operation(&b, "a@example.com", t),
        ] {
            assert!(mail.body.contains(t), "{}", mail.subject);
            assert!(mail.body.contains("test PDS"));
        }
        assert_eq!(
            plc_operation(&b, "a@example.com", t).subject,
            "PLC Update Operation Requested"
        );
        assert!(
            !confirm_email(&b, "x@y.z", t, false)
                .body
                .contains("https://")
        );
    }
}
