pub mod fake_venue;
