# The change made in a container of ovl-changes:1, by `docker run` on the host (whose `docker diff`
# and `docker commit` are the expected results) and by chroot into ovl's merged rootfs in a guest.
# Files get fixed mtimes so that both trees can be compared.
set -euo pipefail
echo extra >> /etc/passwd
rm /bin/vi
mkdir -p /srv/www
echo hi > /srv/www/index.html
rm -rf /d1
mkdir /d1
echo new > /d1/x
rm /links/hard1
chmod 0600 /keep
touch -d '2020-01-02 03:04:05' /etc/passwd /srv/www/index.html /d1/x /keep
