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
	systemctl restart netward.service
else
	systemctl enable netward.service >/dev/null 2>&1 || true
fi
exit 0
