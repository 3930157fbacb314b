#!/bin/sh
# netward post-remove (deb postrm / rpm %postun). deb purge also deletes the
# agent's state (indicator store, bypasses, spool, warn-page CA key).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "$1" = "purge" ]; then
	rm -rf /var/lib/netward /run/netward
fi
exit 0
