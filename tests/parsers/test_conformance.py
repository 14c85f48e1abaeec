"""Conformance over the shared corpus (../shared/corpus): every sample parses without an exception,
and its disposition, format and source IPs are what the table says.

The table was checked against the files (each parser's own test states the per-file fields it
reads: see test_arf.py, test_xarf.py, test_acns.py, test_shadowserver.py, test_text.py). The
samples are sanitised: most addresses are private or documentation ranges, which the free-text
parser offers like any other (the classifier takes them only when they are the provider's own).
A security notice whose key/value block labels the affected host is read by the CERT parser,
which takes the labelled host whatever its range: the customer index decides whether it is ours.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from abuse_desk.parsers.registry import default_registry

from tests.support import corpus_or_skip

EXPECTED = {
    "abuseio/abusehub/Abusehub_Example_1.eml": ("report", "shadowserver", ["172.16.10.13"]),
    "abuseio/abusehub/Abusehub_Example_2.eml": (
        "report",
        "shadowserver",
        ["fdf1:cb9d:f59e:19b0:0:45:0:22"],
    ),
    "abuseio/blocklistde/Blocklistde_Example_1.eml": ("report", "xarf", ["10.0.2.150"]),
    "abuseio/blocklistde/Blocklistde_Example_2.eml": (
        "report",
        "xarf",
        ["fdf1:cb9d:f59e:19b0::33:4f"],
    ),
    "abuseio/cleanmx/Cleanmx_Example_1.eml": ("report", "xarf", ["192.168.2.20"]),
    "abuseio/cleanmx/Cleanmx_Example_2.eml": ("report", "text", ["172.16.10.13"]),
    "abuseio/cleanmx/Cleanmx_Example_3.eml": ("report", "xarf", ["fdf1:cb9d:f59e:19b0:45ff::1"]),
    "abuseio/cleanmx/Cleanmx_Example_4.eml": ("report", "text", ["fdf1:cb9d:f59e:19b0:45ff::1"]),
    "abuseio/copyrightcompliance/Copyrightcompliance_Example_1.eml": (
        "report",
        "acns",
        ["10.0.2.100"],
    ),
    "abuseio/copyrightcompliance/Copyrightcompliance_Example_2.eml": (
        "report",
        "acns",
        ["fdf1:cb9d:f59e:19b0:2:3:ff33:345"],
    ),
    "abuseio/cyscon/Cyscon_Example_1.eml": ("report", "cert", ["172.16.10.13"]),
    "abuseio/cyscon/Cyscon_Example_2.eml": ("report", "cert", ["fdf1:cb9d:f59e:19b0:ff3:567:0:33"]),
    "abuseio/feedback-loop/AOL_example_1.eml": ("report", "arf", ["10.17.18.1"]),
    "abuseio/feedback-loop/AOL_example_2.eml": ("report", "arf", ["10.17.18.2"]),
    "abuseio/feedback-loop/Bluetie_example_1.eml": ("report", "arf", ["10.17.18.3"]),
    "abuseio/feedback-loop/Bluetie_example_2.eml": ("report", "arf", ["10.17.18.4"]),
    "abuseio/feedback-loop/Comcast_example_1.eml": ("report", "arf", ["10.17.18.5"]),
    "abuseio/feedback-loop/Comcast_example_2.eml": ("report", "arf", ["10.17.18.6"]),
    "abuseio/feedback-loop/Cox_example_1.eml": ("report", "arf", ["10.17.18.7"]),
    "abuseio/feedback-loop/Cox_example_2.eml": ("report", "arf", ["10.17.18.8"]),
    "abuseio/feedback-loop/Fastmail_example_1.eml": ("report", "arf", ["10.17.18.9"]),
    "abuseio/feedback-loop/Fastmail_example_2.eml": ("report", "arf", ["10.17.18.11"]),
    "abuseio/feedback-loop/OpenSRS_example_1.eml": ("report", "arf", ["10.17.18.12"]),
    "abuseio/feedback-loop/OpenSRS_example_2.eml": ("report", "arf", ["10.17.18.13"]),
    "abuseio/feedback-loop/Rackspace_example_1.eml": ("report", "arf", ["10.17.18.14"]),
    "abuseio/feedback-loop/Rackspace_example_2.eml": ("report", "arf", ["10.17.18.15"]),
    "abuseio/feedback-loop/RoadRunner_example_1.eml": ("report", "arf", ["10.17.18.16"]),
    "abuseio/feedback-loop/RoadRunner_example_2.eml": ("report", "arf", ["10.17.18.20"]),
    "abuseio/feedback-loop/Synacor_example_1.eml": ("report", "arf", ["10.17.18.21"]),
    "abuseio/feedback-loop/Synacor_example_2.eml": ("report", "arf", ["10.18.19.20"]),
    "abuseio/feedback-loop/USANet_example_1.eml": ("report", "arf", ["10.17.18.23"]),
    "abuseio/feedback-loop/USANet_example_2.eml": ("report", "arf", ["10.17.18.24"]),
    "abuseio/feedback-loop/Yahoo_example_1.eml": ("report", "arf", ["10.17.18.25"]),
    "abuseio/feedback-loop/Yahoo_example_2.eml": ("report", "arf", ["10.17.18.26"]),
    "abuseio/feedback-loop/Zoho_example_1.eml": ("report", "arf", ["10.17.18.28"]),
    "abuseio/feedback-loop/Zoho_example_2.eml": ("report", "arf", ["10.17.18.29"]),
    "abuseio/google/Safe_Browsing_Report_1.eml": ("report", "text", ["10.0.2.23"]),
    "abuseio/google/Safe_Browsing_Report_2.eml": (
        "report", "text", ["fdf1:cb9d:f59e:19b0:ff3:567:0:30"]),
    "abuseio/ip-echelon/ip-echelon_sample1.eml": ("report", "acns", ["192.168.2.200"]),
    "abuseio/ip-echelon/ip-echelon_sample10.eml": ("report", "acns", ["192.168.3.3"]),
    "abuseio/ip-echelon/ip-echelon_sample11.eml": ("report", "acns", ["192.168.3.3"]),
    "abuseio/ip-echelon/ip-echelon_sample12.eml": ("report", "acns", ["192.168.3.3"]),
    "abuseio/ip-echelon/ip-echelon_sample13.eml": ("report", "acns", ["192.168.3.3"]),
    "abuseio/ip-echelon/ip-echelon_sample14.eml": ("report", "acns", ["192.168.3.6"]),
    "abuseio/ip-echelon/ip-echelon_sample15.eml": ("report", "acns", ["192.168.3.6"]),
    "abuseio/ip-echelon/ip-echelon_sample16.eml": ("report", "acns", ["192.168.3.3"]),
    "abuseio/ip-echelon/ip-echelon_sample2.eml": ("report", "acns", ["192.168.2.212"]),
    "abuseio/ip-echelon/ip-echelon_sample3.eml": ("report", "acns", ["192.168.2.100"]),
    "abuseio/ip-echelon/ip-echelon_sample4.eml": ("report", "acns", ["192.168.2.100"]),
    "abuseio/ip-echelon/ip-echelon_sample5.eml": ("report", "acns", ["192.168.2.200"]),
    "abuseio/ip-echelon/ip-echelon_sample6.eml": ("report", "acns", ["192.168.3.2"]),
    "abuseio/ip-echelon/ip-echelon_sample7.eml": ("report", "acns", ["192.168.3.2"]),
    "abuseio/ip-echelon/ip-echelon_sample8.eml": ("report", "acns", ["192.168.3.2"]),
    "abuseio/ip-echelon/ip-echelon_sample9.eml": ("report", "acns", ["192.168.3.2"]),
    "abuseio/netcraft/Netcraft_Example_1.eml": ("report", "xarf", ["10.0.2.2"]),
    "abuseio/netcraft/Netcraft_Example_2.eml": ("report", "xarf", ["fdf1:cb9d:f59e:19b0::1"]),
    "abuseio/netcraft/Netcraft_Example_3.eml": ("report", "xarf", ["10.0.2.11"]),
    "abuseio/netcraft/Netcraft_Example_4.eml": ("report", "xarf", ["10.1.17.34"]),
    "abuseio/netcraft/Netcraft_Example_6.eml": ("report", "xarf", ["10.19.3.1"]),
    "abuseio/netcraft/Netcraft_Example_8.eml": ("report", "xarf", ["10.2.2.15"]),
    "abuseio/netcraft/Netcraft_Example_9.eml": ("report", "xarf", ["10.2.2.15"]),
    "abuseio/projecthoneypot/Projecthoneypot_Example_free_1.eml": (
        "report", "text", ["10.0.2.1"]),
    "abuseio/projecthoneypot/Projecthoneypot_Example_free_2.eml": (
        "report", "text", ["fdaa:b1c7:75bc:bab0::1"]),
    "abuseio/projecthoneypot/Projecthoneypot_Example_paid_1.eml": (
        "report", "text", ["192.168.1.19"]),
    "abuseio/projecthoneypot/Projecthoneypot_Example_paid_2.eml": (
        "report", "text", ["fd30::1:ff4e:3e:d:19"]),
    "abuseio/shadowserver/2015-01-01-dns_openresolver-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        ["208.70.149.107", "204.245.210.223", "40.135.0.109", "76.74.186.178", "31.42.105.195"],
    ),
    "abuseio/shadowserver/2015-01-01-scan_ipmi-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "199.238.169.219",
            "193.124.60.29",
            "173.45.2.72",
            "188.116.19.4",
            "63.141.224.94",
            "112.73.8.4",
            "91.235.106.33",
            "62.117.115.163",
            "206.214.64.64",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_memcached-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "167.160.165.190",
            "42.96.169.80",
            "69.175.96.27",
            "74.82.14.241",
            "172.252.84.254",
            "98.126.206.158",
            "223.4.21.189",
            "121.41.60.46",
            "221.130.4.205",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_mssql-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "110.88.113.98",
            "112.20.234.33",
            "182.73.224.158",
            "82.119.155.254",
            "163.17.10.26",
            "182.18.189.236",
            "177.189.201.149",
            "178.32.46.20",
            "65.182.104.147",
            "187.45.202.36",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_nat_pmp-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "177.9.199.160",
            "94.254.3.170",
            "186.134.58.172",
            "117.68.107.157",
            "189.50.111.239",
            "186.106.128.38",
            "113.116.218.16",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_netbios-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "118.232.245.224",
            "131.193.206.74",
            "188.108.94.175",
            "150.7.205.59",
            "199.83.89.41",
            "203.94.3.164",
            "190.14.237.98",
            "190.177.250.57",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_ntp-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "76.22.142.205",
            "123.23.130.233",
            "193.158.193.1",
            "221.112.23.116",
            "62.212.206.130",
            "115.91.152.25",
            "106.243.160.182",
            "118.186.156.166",
            "91.191.233.205",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_ntpmonitor-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "218.161.57.7",
            "190.116.130.70",
            "108.212.208.147",
            "81.245.134.4",
            "114.35.11.110",
            "180.241.34.240",
            "109.173.161.127",
            "216.234.67.45",
            "107.130.96.108",
            "77.241.38.7",
            "80.84.176.200",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_redis-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "98.126.92.5",
            "153.120.101.170",
            "23.251.154.32",
            "104.203.27.243",
            "50.188.150.22",
            "54.167.182.69",
            "46.4.13.206",
            "58.178.184.235",
            "173.208.211.213",
            "23.239.11.248",
            "54.174.181.36",
            "211.103.198.123",
            "192.241.235.129",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_snmp-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "129.113.21.93",
            "79.2.242.16",
            "95.109.21.127",
            "201.8.4.57",
            "76.186.106.223",
            "182.68.111.119",
            "125.214.158.32",
            "74.138.148.8",
            "222.233.225.196",
            "84.3.91.88",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-scan_ssdp-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "67.193.128.173",
            "24.35.243.77",
            "65.25.192.8",
            "209.197.143.187",
            "76.11.218.168",
            "74.210.207.51",
            "76.166.127.141",
            "1.62.9.118",
            "183.104.67.106",
        ],
    ),
    "abuseio/shadowserver/2015-01-01-sinkhole_http_drone-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        [
            "202.86.21.11",
            "82.115.28.93",
            "180.94.94.3",
            "82.115.10.63",
            "82.115.10.39",
            "82.115.25.117",
            "82.115.23.237",
            "82.115.23.172",
        ],
    ),
    "abuseio/shadowserver/2019-01-06-scan_afp-sample-ip.csv.zip.eml": (
        "report",
        "shadowserver",
        ["127.0.6.59", "127.0.6.57"],
    ),
    "abuseio/shadowserver/2019-10-15-scan_dns-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        ["31.42.105.195"],
    ),
    "abuseio/shadowserver/2019-10-15-scan_ftp-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        ["31.42.105.195"],
    ),
    "abuseio/shadowserver/2019-10-15-scan_http-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        ["31.42.105.195"],
    ),
    "abuseio/shadowserver/2019-10-15-scan_ldap_tcp-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        ["31.42.105.195"],
    ),
    "abuseio/shadowserver/2019-10-15-scan_rsync-sample-asn.csv.zip.eml": (
        "report",
        "shadowserver",
        ["31.42.105.195"],
    ),
    "abuseio/spamexperts/1.eml": ("report", "arf", ["172.16.10.13"]),
    "abuseio/spamexperts/10.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/spamexperts/11.eml": ("report", "arf", ["fdf1:cb9d:f59e:19b0::122"]),
    "abuseio/spamexperts/2.eml": ("report", "arf", ["192.168.1.12"]),
    "abuseio/spamexperts/3.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/spamexperts/4.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/spamexperts/5.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/spamexperts/6.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/spamexperts/7.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/spamexperts/8.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/spamexperts/9.eml": ("report", "arf", ["10.0.2.35"]),
    "abuseio/webiron/Webiron_Example_1.eml": ("report", "cert", ["172.16.31.20"]),
    "abuseio/webiron/Webiron_Example_2.eml": ("report", "text", ["172.16.10.13"]),
    "abuseio/webiron/Webiron_Example_3.eml": ("report", "text", ["fdf1:cb9d:f59e:19b0:0:3:4:2"]),
    "rfc/rfc5965-B1-simple.eml": ("report", "arf", ["192.0.2.1"]),
    "rfc/rfc5965-B2-full.eml": ("report", "arf", ["192.0.2.1"]),
    "rfc/rfc6591-B1-auth-failure.eml": ("ignored", "dmarc-failure", []),
    "sisimai/arf-01.eml": ("report", "arf", ["192.0.2.89"]),
    "sisimai/arf-02.eml": ("report", "arf", ["192.0.2.8"]),
    "sisimai/arf-11.eml": ("report", "arf", ["192.0.2.2"]),
    "sisimai/arf-12.eml": ("report", "arf", ["192.0.2.89"]),
    "sisimai/arf-14.eml": ("report", "arf", ["192.0.2.2"]),
    "sisimai/arf-15.eml": ("report", "arf", ["192.0.2.222"]),
    "sisimai/arf-16.eml": ("report", "arf", ["192.0.2.1"]),
    "sisimai/arf-17.eml": ("report", "arf", ["192.0.2.3"]),
    # RFC 6591 auth-failure reports: DMARC failure reports, not complaints (parsers/dmarc.py)
    "sisimai/arf-18.eml": ("ignored", "dmarc-failure", []),
    "sisimai/arf-19.eml": ("ignored", "dmarc-failure", []),
    "sisimai/arf-20.eml": ("ignored", "dmarc-failure", []),
    "sisimai/arf-21.eml": ("report", "arf", ["198.51.100.224"]),
    "sisimai/arf-22.eml": ("report", "arf", ["203.0.113.245"]),
    "sisimai/arf-23.eml": ("report", "arf", ["203.0.113.245"]),
    "sisimai/arf-24.eml": ("report", "arf", ["203.0.113.245"]),
    "sisimai/arf-25.eml": ("report", "arf", ["10.0.0.1"]),
    "sisimai/arf-26.eml": ("ignored", "autoreply", []),
    "xarf-v4/connection-ddos.json": ("report", "xarf4", ["192.0.2.155"]),
    "xarf-v4/connection-infected-host.json": ("report", "xarf4", ["203.0.113.85"]),
    "xarf-v4/connection-login-attack.json": ("report", "xarf4", ["198.51.100.77"]),
    "xarf-v4/connection-port-scan.json": ("report", "xarf4", ["198.51.100.150"]),
    "xarf-v4/connection-reconnaissance.json": ("report", "xarf4", ["192.0.2.99"]),
    "xarf-v4/connection-scraping.json": ("report", "xarf4", ["192.0.2.150"]),
    "xarf-v4/connection-sql-injection.json": ("report", "xarf4", ["192.0.2.45"]),
    "xarf-v4/connection-vulnerability-scan.json": ("report", "xarf4", ["203.0.113.77"]),
    "xarf-v4/content-brand-infringement.json": ("report", "xarf4", []),
    "xarf-v4/content-csam.json": ("report", "xarf4", ["198.51.100.42"]),
    "xarf-v4/content-csem.json": ("report", "xarf4", ["198.51.100.42"]),
    "xarf-v4/content-exposed-data.json": ("report", "xarf4", ["198.51.100.99"]),
    "xarf-v4/content-fraud.json": ("report", "xarf4", []),
    "xarf-v4/content-malware.json": ("report", "xarf4", ["192.0.2.75"]),
    "xarf-v4/content-phishing.json": ("report", "xarf4", ["203.0.113.45"]),
    "xarf-v4/content-remote-compromise.json": ("report", "xarf4", []),
    "xarf-v4/content-suspicious-registration.json": ("report", "xarf4", []),
    "xarf-v4/copyright-copyright.json": ("report", "xarf4", ["198.51.100.75"]),
    "xarf-v4/copyright-cyberlocker.json": ("report", "xarf4", []),
    "xarf-v4/copyright-link-site.json": ("report", "xarf4", []),
    "xarf-v4/copyright-p2p.json": ("report", "xarf4", ["192.0.2.100"]),
    "xarf-v4/copyright-ugc-platform.json": ("report", "xarf4", []),
    "xarf-v4/copyright-usenet.json": ("report", "xarf4", []),
    "xarf-v4/infrastructure-botnet.json": ("report", "xarf4", ["198.51.100.25"]),
    "xarf-v4/infrastructure-compromised-server.json": ("report", "xarf4", ["203.0.113.150"]),
    "xarf-v4/messaging-bulk-messaging.json": ("report", "xarf4", []),
    "xarf-v4/messaging-spam.json": ("report", "xarf4", ["192.168.1.100"]),
    "xarf-v4/reputation-blocklist.json": ("report", "xarf4", ["203.0.113.200"]),
    "xarf-v4/reputation-threat-intelligence.json": ("report", "xarf4", ["192.0.2.50"]),
    "xarf-v4/vulnerability-cve.json": ("report", "xarf4", ["172.16.1.200"]),
    "xarf-v4/vulnerability-misconfiguration.json": ("report", "xarf4", ["192.0.2.75"]),
    "xarf-v4/vulnerability-open-service.json": ("report", "xarf4", ["192.0.2.50"]),
    # DMARC failure reports (RFC 6591 ARF, Feedback-Type auth-failure, or plain text), DMARC
    # aggregate reports (XML, bare, zipped or gzipped, also not well-formed) and SMTP TLS reports
    # (RFC 8460 JSON): none is a complaint (parsers/dmarc.py); each is ignored with its kind.
    "dmarc/failure/(Netease_DMARC_Failure_Report)_Rent_Reminder.eml": (
        "ignored", "dmarc-failure", []),
    "dmarc/failure/DMARC_Failure_Report_for_domain.de_(mail-from=sharepoint@domain.de,"
    "_ip=10.10.10.10).eml": ("ignored", "dmarc-failure", []),
    "dmarc/failure/dmarc_ruf_report_linkedin.crlf.eml": ("ignored", "dmarc-failure", []),
    "dmarc/failure/dmarc_ruf_report_linkedin.eml": ("ignored", "dmarc-failure", []),
    "dmarc/failure/exim_plain_text_only_no_arf_part.eml": ("ignored", "dmarc-failure", []),
    "dmarc/aggregate/!example.com!1538204542!1538463818.xml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/Report_domain-_borschow.com_Submitter-_google.com_Report-ID-_"
    "949348866075514174.eml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/empty_reason.xml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940"
    ".xml.zip": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/example.net!example.com!1529366400!1529452799.xml": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/ikea.com!example.de!1538690400!1538776800.xml": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/invalid_utf_8.xml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/invalid_xml.xml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/mimecast-weird-gzip.eml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/old_draft_from_wiki.xml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/rfc9990-sample.xml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/twilight.eml": ("ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/usssa.com!example.com!1538784000!1538870399.xml": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/aggregate/veeam.com!example.com!1530133200!1530219600.xml": (
        "ignored", "dmarc-aggregate", []),
    "dmarc/smtp_tls/google.com_smtp_tls_report.eml": ("ignored", "tls-report", []),
    "dmarc/smtp_tls/mail.ru.json": ("ignored", "tls-report", []),
    "dmarc/smtp_tls/rfc8460.json": ("ignored", "tls-report", []),
    "dmarc/smtp_tls/smtp_tls.json": ("ignored", "tls-report", []),
}

# Every file of the corpus is a sample but its folders' READMEs.
SAMPLE_SUFFIXES = (".eml", ".json", ".xml", ".gz", ".zip")


@pytest.fixture(scope="module")
def corpus() -> Path:
    return corpus_or_skip()


def test_the_table_covers_every_sample(corpus: Path) -> None:
    files = {str(p.relative_to(corpus)) for p in corpus.rglob("*")
             if p.is_file() and p.name.endswith(SAMPLE_SUFFIXES)}
    others = {str(p.relative_to(corpus)) for p in corpus.rglob("*")
              if p.is_file() and not p.name.endswith(SAMPLE_SUFFIXES)
              and not p.name.upper().startswith("README")}
    assert others == set(), "a sample of a kind this table does not know"
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(corpus: Path, name: str) -> None:
    result = default_registry().parse((corpus / name).read_bytes())
    assert not result.errors, result.errors  # no parser raised
    ips: list[str] = []
    for report in result.reports:
        if report.source_ip and report.source_ip not in ips:
            ips.append(report.source_ip)
    assert (result.disposition.value, result.format, ips) == EXPECTED[name]
    if result.disposition.value == "report":
        assert result.reports, "a complaint must give at least one report"
