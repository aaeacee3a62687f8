package broker

import "golang.org/x/sys/unix"

// diskSpace returns the total and usable (available to unprivileged users) bytes of the file
// system holding dir, as Java's FileStore.getTotalSpace/getUsableSpace.
func diskSpace(dir string) (total, usable int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1, -1, err
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize), nil
}
