"""BTC prices in fiat currencies: provider adapters (Spotbit, CoinGecko, Coinbase
compatible, and `fixed` for development), validation across providers (median,
deviation discard, staleness), storage (current + daily history), and the conversions
the API and the policy engine use.

Layout: `money.py` and `validate.py` are pure; `http.py` and `providers.py` talk to the
outside; `model.py`/`store.py` are the tables and their queries; `services.py` is the
refresh and backfill use cases the beat jobs run. Requests never wait on a provider:
they read what the jobs stored.
"""
