#!/bin/sh
# netward pre-remove (deb prerm / rpm %preun): on removal stop and disable
# the service, then remove every rule and redirect the agent made. On upgrade
# nothing happens here: post-install restarts the new version.
# deb: $1 = remove | upgrade | deconfigure | failed-upgrade; rpm: $1 = 0
# (erase) or 1 (upgrade).
set -e
case "$1" in
	remove|0) ;;
	*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	# ExecStopPost runs `netward cleanup` as well.
	systemctl stop netward.service || true
	systemctl disable netward.service || true
fi
# Again without systemd, or if the stop failed: cleanup is safe to run any time.
/usr/bin/netward cleanup || true
exit 0
