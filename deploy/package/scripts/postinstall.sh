#!/bin/sh
# netward post-install (deb postinst / rpm %post): enable the service and
# (re)start it, so a fresh install protects at once and an upgrade runs the
# new binary. deb: $1 = configure; rpm: $1 = 1 (install) or 2 (upgrade).
set -e
case "$1" in
	configure|1|2) ;;
	*) exit 0 ;;
esac
# Without a running systemd (containers, chroots, image builds) there is
# nothing to start; the unit is enabled on the next boot's preset instead.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable netward.service
	# A service that does not start (e.g. a config it refuses) must not leave
	# the package half-configured: say where to look instead.
	if ! systemctl restart netward.service; then
		echo "netward: the service did not start; see: systemctl status netward; journalctl -u netward" >&2
	fi
else
	systemctl enable netward.service >/dev/null 2>&1 || true
fi
exit 0
