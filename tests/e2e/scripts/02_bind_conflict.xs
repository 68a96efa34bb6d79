# The same resource twice: the old session gets <conflict/> (policy replace).
user alice secret
login a alice phone
login b alice phone
stream-error a conflict
send b <iq type='get' id='p' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>
expect b <iq type='result' id='p' from='${DOMAIN}'/>
