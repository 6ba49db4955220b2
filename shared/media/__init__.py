"""Media operations several services share: the one writer (`store`), the one source finder
(`source`), remote fetches, quotas, pending async uploads, access times, change announcements."""
