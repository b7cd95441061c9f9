"""The emulator's HTTP routes: the Push API by resource, the upload route, and the admin API."""
