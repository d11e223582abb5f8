//! `handoff publish FILE`: a log validated whole, then published with confirms
//! (`crate::live::publish`).

use std::process::ExitCode;

use crate::live::publish::PublishArgs;

#[derive(Debug, clap::Args)]
/// Publish a JSON-lines log of events to RabbitMQ (`handoff.events`), with publisher
/// confirms.
#[command(long_about = "Publish a JSON-lines log of events to RabbitMQ: one \
persistent message per event on the events exchange, routing key = the event type, with \
publisher confirms. The whole file is validated first; if any line is bad (reported as \
FILE:LINE: reason) nothing is published. Each message's user-id is the URL's user, or with \
--impersonate the first publisher of --config allowed to send the event (the URL's user \
then needs RabbitMQ's impersonator tag). A journal's handoffreceived and handoffcrc \
attributes are dropped, and its control entries (handoff.journal.opened) are skipped and \
counted: they are handoff's own, never published.\n\n\
Exit status: 0 if every event was published and confirmed, 1 if a line is invalid or a \
message was returned (unroutable) or nacked, 2 if the file, the configuration or the \
broker could not be used.")]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) publish: PublishArgs,
}

/// Runs the publisher; its exit status is its own (see the long help).
pub fn run(args: Args) -> ExitCode {
    crate::live::publish::run(&args.publish)
}
