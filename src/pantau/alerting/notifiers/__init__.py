"""One module per channel. Each notifier turns a group's alerts into that channel's message
and sends it; failures say whether a retry can help (`NotifyError.retry`)."""
