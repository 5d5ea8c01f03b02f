-- The imapfilter side of the backlog benchmark: the job of issue 8, word for word.
-- benches/suite/backlog.rs writes the account line (acct = IMAP {...}) in front of it.
options.create = true
options.expunge = true

box = acct['BenchRun']
box:contain_field('List-Id', 'spamassassin'):move_messages(acct['Lists/SpamAssassin']);
box:contain_field('List-Id', 'usrp-users'):move_messages(acct['Lists/USRP']);
box:contain_field('List-Id', 'open-iscsi'):move_messages(acct['Lists/iSCSI']);
box:contain_field('List-Id', 'exmh'):move_messages(acct['Lists/exmh']);
box:contain_field('List-Id', 'ilug'):move_messages(acct['Lists/ILUG']);
(box:contain_from('MAILER-DAEMON') + box:contain_subject('Undelivered') + box:contain_subject('failure notice')):move_messages(acct['Bounces']);
box:contain_field('Content-Type', 'multipart/report'):move_messages(acct['Bounces']);
(box:contain_field('Precedence', 'bulk') * box:is_unseen()):mark_flagged();
box:contain_subject('[SAtalk]'):add_flags({'$SAtalk'});
box:contain_field('Auto-Submitted', 'auto-replied'):move_messages(acct['Auto']);
