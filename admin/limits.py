"""Named limits for staff authentication (one place)."""
import datetime as dt

MAX_FAILED_LOGINS = 5                          # consecutive password/TOTP failures before a lockout
LOCKOUT = dt.timedelta(minutes=15)             # how long a locked account stays locked
SESSION_IDLE_TIMEOUT = dt.timedelta(minutes=15)  # console session idle timeout
SESSION_MAX_AGE = dt.timedelta(hours=12)       # absolute console session lifetime
LOGIN_STAGE_TIMEOUT = dt.timedelta(minutes=5)  # password accepted, TOTP not yet given
TOKEN_DEFAULT_TTL = dt.timedelta(days=90)      # API tokens expire unless told otherwise
TOKEN_MAX_TTL = dt.timedelta(days=365)
TOTP_VALID_WINDOW = 1                          # ±30 s steps accepted (clock skew)
MIN_PASSWORD_LENGTH = 12
TOKEN_TOUCH_EVERY = dt.timedelta(seconds=60)   # last_used_at is written at most this often
HEARTBEAT_RECENT = dt.timedelta(minutes=2)     # a worker seen within this is "up"
